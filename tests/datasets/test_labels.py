"""Label maps (YAML -> coded concepts) and the geometry check of NIfTI label maps against the
series' NIfTI: exact maps pass, flipped, shifted and resampled ones are refused by name."""

from __future__ import annotations

import gzip
import re

import nibabel
import numpy as np
import pytest
from image_series import SAGITTAL, oblique, stack

from lakehouse.datasets.labels import Code, check_geometry, default_label_map, parse_label_map
from lakehouse.datasets.model import Unconvertible
from lakehouse.datasets.nifti import label_map_nifti, series_to_nifti

LABEL_MAP = """
category: {value: "123037004", scheme: SCT, meaning: Anatomical Structure}
segments:
  - number: 2
    label: lesion
    category: ["49755003", SCT, Morphologically Altered Structure]
    type: [52988006, SCT, Lesion]
  - number: 1
    label: liver
    type: {value: "10200004", scheme: SCT, meaning: Liver}
"""


def test_label_map_yaml_gives_coded_segments_in_number_order() -> None:
    label_map = parse_label_map(LABEL_MAP)
    assert label_map.numbers == (1, 2)
    liver, lesion = label_map.segments
    assert (liver.label, liver.category, liver.type) == (
        "liver", Code("123037004", "SCT", "Anatomical Structure"), Code("10200004", "SCT", "Liver"))
    assert lesion.category == Code("49755003", "SCT", "Morphologically Altered Structure")
    assert lesion.type == Code("52988006", "SCT", "Lesion")  # an unquoted YAML number is a code value too

TWO_SEGMENTS = (
    "segments:\n  - {{number: 1, label: a, category: [1, SCT, x], type: [2, SCT, y]}}\n"
    "  - {{number: {second}, label: {label}, category: [1, SCT, x], type: [2, SCT, y]}}"
)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("segments: [", "not valid YAML"),
        ("labels: {}", "non-empty 'segments'"),
        (TWO_SEGMENTS.format(second=3, label="b"), "run 1..2 without gaps"),
        (TWO_SEGMENTS.format(second=2, label="a"), "share a label"),
        ("segments:\n  - {number: 1, label: a, category: [1, SCT, x]}", "'type' (the coded concept) is missing"),
        ("segments:\n  - {number: 1, label: a, type: [2, SCT, y]}", "no default category"),
        ("segments:\n  - {number: one, label: a, category: [1, SCT, x], type: [2, SCT, y]}", "integer 'number'"),
        ("segments:\n  - {number: 1, label: a, category: [1, SCT], type: [2, SCT, y]}", "a code is"),
        (f"segments:\n  - {{number: 1, label: a, category: [1, SCT, {'m' * 65}], type: [2, SCT, y]}}",
         "at most 64"),
    ],
)
def test_bad_label_maps_are_refused_with_one_line(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)) as refused:
        parse_label_map(text)
    assert "\n" not in str(refused.value)


def test_default_label_map_fills_one_to_max_with_the_generic_concept() -> None:
    label_map = default_label_map(np.array([0, 3, 1, 3]))
    tissue = Code("85756007", "SCT", "Tissue")
    assert [(s.number, s.label, s.category, s.type) for s in label_map.segments] == [
        (1, "label 1", tissue, tissue), (2, "label 2", tissue, tissue), (3, "label 3", tissue, tissue)]
    named = default_label_map([2, 1], ["kidney", "spleen"])
    assert [s.label for s in named.segments] == ["kidney", "spleen"]
    assert default_label_map([0]).segments == ()
    with pytest.raises(ValueError, match="2 label names given for 1"):
        default_label_map([1], ["a", "b"])


# --- geometry --------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["axial", "sagittal", "oblique"])
def series(request: pytest.FixtureRequest) -> dict:
    orientation = {"axial": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0), "sagittal": SAGITTAL, "oblique": oblique(25)}
    return series_to_nifti(stack(6, orientation=orientation[request.param], gap=2.0)).sidecar


def labels_for(sidecar: dict) -> np.ndarray:
    volume = np.zeros(tuple(sidecar["shape"]), dtype=np.uint16)
    volume[1:4, 2:5, 1:5] = 1
    volume[0, 0, 0] = 2
    return volume


def written(volume: np.ndarray, affine: np.ndarray, *, gz: bool = True) -> bytes:
    """A label map as a third-party tool writes it (nibabel, float32 sform, default header)."""
    image = nibabel.Nifti1Image(volume, affine)
    return gzip.compress(image.to_bytes()) if gz else image.to_bytes()


def test_a_label_map_on_the_series_grid_comes_back_as_is(series: dict) -> None:
    volume = labels_for(series)
    assert np.array_equal(check_geometry(label_map_nifti(volume, series), series), volume)
    affine = np.asarray(series["affine"])
    # uncompressed, float32 voxels, a 4D single-channel map (MONAI): all the same labels
    assert np.array_equal(check_geometry(written(volume.astype(np.float32), affine, gz=False), series), volume)
    assert np.array_equal(check_geometry(written(volume[..., None], affine), series), volume)


def test_rounding_below_the_tolerance_passes(series: dict) -> None:
    affine = np.asarray(series["affine"]) + 1e-6
    assert check_geometry(written(labels_for(series), affine), series).shape == tuple(series["shape"])


def test_flipped_map_is_refused_even_with_a_consistent_affine(series: dict) -> None:
    image = nibabel.Nifti1Image(labels_for(series), np.asarray(series["affine"]))
    flipped = image.slicer[::-1]  # voxels reversed along i, affine adjusted: same anatomy, other voxel order
    with pytest.raises(Unconvertible, match=r"axis 0 reversed") as refused:
        check_geometry(flipped.to_bytes(), series)
    assert refused.value.code == "direction_mismatch"


def test_lps_affine_is_a_direction_mismatch(series: dict) -> None:
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(series["affine"])
    with pytest.raises(Unconvertible) as refused:
        check_geometry(written(labels_for(series), lps), series)
    assert refused.value.code in {"direction_mismatch"}


def test_shifted_map_is_an_origin_mismatch(series: dict) -> None:
    affine = np.asarray(series["affine"]).copy()
    affine[:3, 3] += affine[:3, 2] * 0.5  # half a slice along k
    with pytest.raises(Unconvertible, match="1.000 mm from") as refused:
        check_geometry(written(labels_for(series), affine), series)
    assert refused.value.code == "origin_mismatch"


def test_resampled_maps_are_refused_by_shape_or_spacing(series: dict) -> None:
    affine = np.asarray(series["affine"])
    half = affine.copy()
    half[:3, :3] *= 2
    with pytest.raises(Unconvertible) as refused:
        check_geometry(written(labels_for(series)[::2, ::2, ::2].copy(), half), series)
    assert refused.value.code == "shape_mismatch"
    with pytest.raises(Unconvertible, match="voxel spacing") as refused:
        check_geometry(written(labels_for(series), half), series)
    assert refused.value.code == "spacing_mismatch"


def test_what_is_not_a_label_map_is_refused(series: dict) -> None:
    affine = np.asarray(series["affine"])
    cases = {
        b"not a nifti at all": "not_a_nifti",
        gzip.compress(b"\x00" * 400): "not_a_nifti",
        written(labels_for(series) * np.float32(0.5), affine): "not_a_label_map",
        written(labels_for(series).astype(np.int16) - 1, affine): "not_a_label_map",
    }
    for data, code in cases.items():
        with pytest.raises(Unconvertible) as refused:
            check_geometry(data, series)
        assert refused.value.code == code
