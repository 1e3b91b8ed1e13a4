"""The whole flow on local folders with synthetic data: what ``lakehouse demo`` runs.

Synthesize an archive, catalog it (audited), submit a request as demo-requester,
approve it as demo-approver, export it as demo-operator, count the exported
instances per modality, build a labeling dataset of the CT series as demo-curator
(DICOM, NIfTI and PNG with every manifest and the dataset card), and import a label map
drawn on one of its volumes as demo-labeler (stored as a DICOM SEG). The roles are typed names in the demo's own config (the
explicit demo mode); burned-in objects (US, secondary capture) stay quarantined
because the demo does not clean pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import nibabel
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse import datasets, governance, lake
from lakehouse.catalog import SyncResult, catalog_stats
from lakehouse.config import PolicySettings, Settings, init_root, load_settings
from lakehouse.datasets import layout
from lakehouse.deid.risk import FloorDecision
from lakehouse.export import ExportOutcome, run_export
from lakehouse.export.keys import load_project_key
from lakehouse.governance.cohort import read_catalog
from lakehouse.governance.risk import cohort_risk
from lakehouse.synth import synthesize_archive
from lakehouse.workflows import import_annotations, sync_catalog_audited

PROJECT = "demo"
ROLES = {
    "requesters": ["demo-requester"],
    "approvers": ["demo-approver"],
    "operators": ["demo-operator"],
    "admins": ["demo-admin"],
    "curators": ["demo-curator"],
    "labelers": ["demo-labeler"],
}
DATASET = "demo-ct"
LABEL_MAP = """\
segments:
  - number: 1
    label: body
    category: {value: "91723000", scheme: SCT, meaning: Anatomical structure}
    type: {value: "38266002", scheme: SCT, meaning: Entire body as a whole}
"""
#: The demo's k-anonymity floor: off. Six synthetic patients with shifted study years cannot be
#: 5-anonymous; the demo measures k and prints what the default floor would decide.
DEMO_MIN_K = 1
OPTIONS = ["retain-modified-dates", "clean-descriptors", "clean-structured-content", "clean-graphics"]
#: What the demo counts, as SQL to try in DuckDB or Spark; the demo computes it with Arrow.
QUERY = (
    "SELECT Modality, count(*) AS instances, count(DISTINCT StudyInstanceUID) AS studies "
    "FROM instances GROUP BY Modality ORDER BY Modality"
)

Advance = Callable[[int], None]
#: Opens a progress display for a step (description, total or None); yields ``advance(n)``.
Progress = Callable[[str, int | None], AbstractContextManager[Advance]]


def _ignore(n: int = 1) -> None:
    pass


@contextmanager
def no_progress(_description: str, _total: int | None) -> Iterator[Advance]:
    yield _ignore


@dataclass(frozen=True)
class DemoResult:
    config_path: Path
    settings: Settings
    synthesized_objects: int
    catalog_sync: SyncResult
    catalog_stats: dict[str, Any]
    request_id: str
    export: ExportOutcome
    per_modality: list[tuple[str | None, int, int]]  # (modality, instances, studies), as QUERY
    dataset: datasets.BuildResult
    at_default_floor: FloorDecision  # what [policy] min_k 5 would decide for the export
    annotations: list[dict[str, Any]]  # rows of the annotations table, with their segments

    @property
    def tables_uri(self) -> str:
        return self.settings.research.join(PROJECT, "tables")

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": str(self.config_path),
            "synthesized_objects": self.synthesized_objects,
            "catalog_sync": self.catalog_sync.to_dict(),
            "catalog_stats": self.catalog_stats,
            "request_id": self.request_id,
            "export": self.export.to_dict(),
            "sample_query": QUERY,
            "sample_result": [list(row) for row in self.per_modality],
            "dataset": self.dataset.to_dict(),
            "risk_at_default_floor": self.at_default_floor.to_dict(),
            "annotations": self.annotations,
        }


def run_demo(directory: Path, *, patients: int = 6, seed: int = 7, progress: Progress = no_progress) -> DemoResult:
    """Create a demo root in ``directory`` and run the flow end to end."""
    config_path = init_root(directory, roles=ROLES, identity_mode="asserted", min_k=DEMO_MIN_K)
    settings = load_settings(config_path)
    written = synthesize_archive(settings.archive.local_path, patients=patients, seed=seed)
    with progress("cataloging", len(written)) as advance:
        sync = sync_catalog_audited(settings, user="demo-operator", progress=advance)
    request = governance.submit_request(
        settings,
        user="demo-requester",
        project=PROJECT,
        title="Demo cohort",
        purpose="Try lakehouse end to end on synthetic data",
        protocol="DEMO-IRB-0001",
        cohort={},
        options=OPTIONS,
    )
    governance.approve(settings, request.id, user="demo-approver", expires=date.today() + timedelta(days=30))
    with progress("exporting", None) as advance:
        outcome = run_export(settings, request.id, user="demo-operator", progress=advance)
    default_policy = replace(settings, policy=replace(settings.policy, min_k=PolicySettings().min_k))
    at_default_floor = cohort_risk(
        default_policy, read_catalog(settings), OPTIONS, key=load_project_key(settings, PROJECT)
    )
    instances = lake.table(settings, "instances", project=PROJECT).read(
        columns=["Modality", "SOPInstanceUID", "StudyInstanceUID"]
    )
    selection = datasets.Selection("sql", "Modality = 'CT'")
    with progress("building a dataset", None) as advance:
        dataset = datasets.build_dataset(
            settings,
            datasets.BuildOptions(project=PROJECT, name=DATASET, selection=selection, window="lung",
                                  formats=("dicom", "nifti", "png"), manifests=("labelstudio", "monai", "nnunet", "ohif")),
            user="demo-curator", advance=advance,
        )
    labels = _draw_labels(directory / "labels", dataset)
    import_annotations(settings, PROJECT, DATASET, dataset.version.version, labels, kind="nifti",
                       user="demo-labeler", annotator="demo-labeler", label_map_text=LABEL_MAP)
    return DemoResult(
        config_path=config_path,
        settings=settings,
        synthesized_objects=len(written),
        catalog_sync=sync,
        catalog_stats=catalog_stats(settings),
        request_id=request.id,
        export=outcome,
        per_modality=count_per_modality(instances),
        dataset=dataset,
        at_default_floor=at_default_floor,
        annotations=datasets.list_annotations(settings, PROJECT, DATASET, dataset.version.version),
    )


def _draw_labels(folder: Path, dataset: datasets.BuildResult) -> Path:
    """A label map for the dataset's first volume, as a labeler's tool would save it: the voxels
    of the synthetic body (above -500 HU) labelled 1, on the volume's own grid."""
    volume = next(n for m in dataset.contents.members for n in m.nifti)
    image = nibabel.Nifti1Image.from_filename(str(Path(dataset.location) / volume.path))
    labels = (np.asarray(image.dataobj) > -500).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    nibabel.save(nibabel.Nifti1Image(labels, image.affine), folder / f"{layout.case_id(volume.series_instance_uid)}.nii.gz")
    return folder


def count_per_modality(instances: pa.Table) -> list[tuple[str | None, int, int]]:
    """QUERY over an Arrow table: instances and distinct studies per modality, nulls last."""
    grouped = instances.group_by("Modality").aggregate(
        [
            ("SOPInstanceUID", "count", pc.CountOptions(mode="all")),
            ("StudyInstanceUID", "count_distinct"),
        ]
    )
    ordered = grouped.sort_by([("Modality", "ascending")], null_placement="at_end")
    return list(
        zip(
            ordered.column("Modality").to_pylist(),
            ordered.column("SOPInstanceUID_count").to_pylist(),
            ordered.column("StudyInstanceUID_count_distinct").to_pylist(),
            strict=True,
        )
    )
