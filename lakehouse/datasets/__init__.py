"""Labeling datasets: versioned cohorts with stable patient splits, in the formats labeling
and training tools open (DICOM, NIfTI, PNG; Label Studio, MONAI, nnU-Net and OHIF
manifests; Croissant and DATASHEET.md cards), built from the research tables.

    selection -> splits -> build (render, manifests, card, checks) -> registry (publish)
    pull / withdraw / diff over the registry; purges withdraw what they reach.
    annotations: labels back as DICOM SEG tied to a version's source slices.
"""

from lakehouse.datasets.annotations import (
    ImportResult,
    annotation_agreement,
    export_annotations,
    import_annotations,
    list_annotations,
)
from lakehouse.datasets.build import BuildOptions, BuildResult, build_dataset
from lakehouse.datasets.pull import PullResult, pull
from lakehouse.datasets.registry import DatasetError, Version, get_version, list_versions, parse_ref
from lakehouse.datasets.selection import Selection, SelectionError, parse_pins
from lakehouse.datasets.splits import DEFAULT_SPLITS, parse_splits
from lakehouse.datasets.versions import Diff, diff, project_of, projects, withdraw, withdraw_purged

__all__ = [
    "DEFAULT_SPLITS",
    "BuildOptions",
    "BuildResult",
    "DatasetError",
    "Diff",
    "ImportResult",
    "PullResult",
    "Selection",
    "SelectionError",
    "Version",
    "annotation_agreement",
    "build_dataset",
    "diff",
    "export_annotations",
    "get_version",
    "import_annotations",
    "list_annotations",
    "list_versions",
    "parse_pins",
    "parse_ref",
    "parse_splits",
    "project_of",
    "projects",
    "pull",
    "withdraw",
    "withdraw_purged",
]
