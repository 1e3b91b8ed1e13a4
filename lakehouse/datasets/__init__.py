"""Labeling datasets: versioned cohorts with stable patient splits, in the formats labeling
and training tools open (DICOM, NIfTI, PNG; Label Studio, MONAI, nnU-Net and OHIF
manifests; Croissant and DATASHEET.md cards), built from the research tables.

    selection -> splits -> build (render, manifests, card, checks) -> registry (publish)
    pull / withdraw / diff over the registry; purges withdraw what they reach.
    annotations: labels back as DICOM SEG tied to a version's source slices.

Exports load on first use (``lakehouse._lazy``), except ``pull``: a function named like its
module must be bound before anything imports that module, or the module would shadow it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehouse._lazy import lazy_exports
from lakehouse.datasets.pull import PullResult, pull

if TYPE_CHECKING:
    from lakehouse.datasets.annotations import (
        ImportResult,
        annotation_agreement,
        export_annotations,
        import_annotations,
        list_annotations,
    )
    from lakehouse.datasets.build import BuildOptions, BuildResult, build_dataset
    from lakehouse.datasets.registry import DatasetError, Version, get_version, list_versions, parse_ref
    from lakehouse.datasets.selection import Selection, SelectionError, parse_pins
    from lakehouse.datasets.splits import DEFAULT_SPLITS, parse_splits
    from lakehouse.datasets.versions import Diff, diff, project_of, projects, withdraw, withdraw_purged

__getattr__ = lazy_exports(
    __name__,
    {
        "ImportResult": "annotations",
        "annotation_agreement": "annotations",
        "export_annotations": "annotations",
        "import_annotations": "annotations",
        "list_annotations": "annotations",
        "BuildOptions": "build",
        "BuildResult": "build",
        "build_dataset": "build",
        "DatasetError": "registry",
        "Version": "registry",
        "get_version": "registry",
        "list_versions": "registry",
        "parse_ref": "registry",
        "Selection": "selection",
        "SelectionError": "selection",
        "parse_pins": "selection",
        "DEFAULT_SPLITS": "splits",
        "parse_splits": "splits",
        "Diff": "versions",
        "diff": "versions",
        "project_of": "versions",
        "projects": "versions",
        "withdraw": "versions",
        "withdraw_purged": "versions",
    },
)

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
