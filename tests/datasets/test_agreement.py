"""Dice and volume difference on synthetic masks whose overlap is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from lakehouse.datasets.agreement import agreement

SPACING = (0.5, 0.5, 2.0)  # 0.5 mm^3 per voxel: 2000 voxels are 1 ml


def cubes() -> tuple[np.ndarray, np.ndarray]:
    a = np.zeros((40, 40, 20), dtype=np.uint16)
    b = np.zeros_like(a)
    a[0:20, 0:10, 0:10] = 1  # 2000 voxels
    b[10:30, 0:10, 0:10] = 1  # 2000 voxels, half of them shared with a
    a[30:40, 30:40, 0:10] = 2  # 1000 voxels
    b[30:40, 30:40, 0:15] = 2  # 1500 voxels, all of a's inside
    a[0:2, 39, 19] = 3  # only in a
    return a, b


def test_known_overlaps() -> None:
    a, b = cubes()
    rows = {row["segment"]: row for row in agreement(a, b, [3, 1, 2, 4, 1], SPACING)}
    assert sorted(rows) == [1, 2, 3, 4]
    assert rows[1] == {
        "segment": 1, "dice": 0.5, "voxels_a": 2000, "voxels_b": 2000, "voxels_both": 1000,
        "volume_ml_a": 1.0, "volume_ml_b": 1.0, "volume_diff_ml": 0.0, "volume_diff_percent": 0.0,
    }
    assert rows[2]["dice"] == pytest.approx(2 * 1000 / 2500)
    assert (rows[2]["volume_ml_a"], rows[2]["volume_ml_b"]) == (0.5, 0.75)
    assert rows[2]["volume_diff_ml"] == pytest.approx(0.25)
    assert rows[2]["volume_diff_percent"] == pytest.approx(100 * 0.25 / 0.625)
    assert (rows[3]["dice"], rows[3]["voxels_b"], rows[3]["volume_diff_percent"]) == (0.0, 0, pytest.approx(-200.0))
    assert (rows[4]["dice"], rows[4]["volume_diff_percent"]) == (None, None)  # in neither: no evidence


def test_agreement_is_symmetric_but_for_the_sign_of_the_difference() -> None:
    a, b = cubes()
    forward, backward = agreement(a, b, [1, 2], SPACING), agreement(b, a, [1, 2], SPACING)
    for f, r in zip(forward, backward, strict=True):
        assert f["dice"] == r["dice"] and f["volume_diff_ml"] == -r["volume_diff_ml"]


def test_identical_masks_agree_fully_and_other_grids_are_refused() -> None:
    a, _ = cubes()
    assert [row["dice"] for row in agreement(a, a.copy(), [1, 2, 3], SPACING)] == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="not on one grid"):
        agreement(a, a[:, :, :10], [1], SPACING)
