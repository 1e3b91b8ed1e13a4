"""Agreement between two label volumes of the same series (two annotators, or two rounds): Dice
and volume difference per segment, the figures a labeling lead checks before calling labels final.

Dice is 2|A∩B| / (|A| + |B|) over the voxels labelled with the segment's number; it is ``None``
when neither volume has the segment (no evidence either way, rather than a perfect 1.0). The
volume difference is B minus A in millilitres, and in percent of the mean of the two volumes
(symmetric in A and B; ``None`` when both are empty).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def agreement(
    a: np.ndarray, b: np.ndarray, segments: Iterable[int], spacing_mm: Sequence[float],
) -> list[dict[str, Any]]:
    """One row per segment number: ``segment``, ``dice``, ``voxels_a``, ``voxels_b``,
    ``voxels_both``, ``volume_ml_a``, ``volume_ml_b``, ``volume_diff_ml``, ``volume_diff_percent``."""
    if a.shape != b.shape:
        raise ValueError(f"label volumes of shapes {list(a.shape)} and {list(b.shape)} are not on one grid")
    voxel_ml = float(np.prod([float(s) for s in spacing_mm])) / 1000.0
    rows = []
    for number in sorted(set(segments)):
        in_a, in_b = a == number, b == number
        count_a, count_b = int(in_a.sum()), int(in_b.sum())
        both = int(np.logical_and(in_a, in_b).sum())
        ml_a, ml_b = count_a * voxel_ml, count_b * voxel_ml
        mean = (ml_a + ml_b) / 2
        rows.append({
            "segment": number,
            "dice": 2 * both / (count_a + count_b) if count_a + count_b else None,
            "voxels_a": count_a,
            "voxels_b": count_b,
            "voxels_both": both,
            "volume_ml_a": ml_a,
            "volume_ml_b": ml_b,
            "volume_diff_ml": ml_b - ml_a,
            "volume_diff_percent": 100 * (ml_b - ml_a) / mean if mean else None,
        })
    return rows
