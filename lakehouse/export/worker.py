"""One batch of an export: read → verify → de-identify → stage objects and rows.

Workers do no quality checks: the driver gates each batch as it lands (``export.gate``),
so workers (and Spark executors) need neither Great Expectations nor its start-up time.

``process_batch`` is a pure function of its ``BatchTask`` (everything it needs
travels inside it, picklable), so the local process pool and Spark tasks run
the very same code and produce the same bytes. A batch is done when its marker
(``RunLayout.marker``) exists; it is written last, so a batch killed midway is
simply redone (its staged objects and files are overwritten with identical bytes).
A batch that fails returns a ``StageFailure`` instead of raising: it travels back
the same way from a process pool and from Spark, with the stage that failed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.config import Settings
from lakehouse.deid import DeidSettings, deidentify
from lakehouse.dicom.uid import is_uid
from lakehouse.errors import DicomParseError, ObjectNotFound, PermanentStorageError
from lakehouse.export.errors import ExportStageError, StageFailure, stage
from lakehouse.export.layout import RunLayout, batch_name
from lakehouse.export.results import BatchSummary, ObjectOutcome
from lakehouse.flatten import Provenance, flatten, rows_to_tables
from lakehouse.governance import ManifestEntry
from lakehouse.lake import table_spec
from lakehouse.storage import ObjectReader, ObjectStore, open_archive, open_zone

RESEARCH_TABLES = ("studies", "series", "instances", "attributes")
RESTRICTED_TABLES = ("lineage", "quarantine")

BatchResult = BatchSummary | StageFailure


@dataclass(frozen=True)
class BatchTask:
    settings: Settings
    layout: RunLayout
    batch: int
    entries: tuple[ManifestEntry, ...]  # identified: never printed
    deid: DeidSettings
    provenance: Provenance  # run id, request id, project, profile and options of every row

    @property
    def name(self) -> str:
        return batch_name(self.batch)

    def __repr__(self) -> str:  # never print entries (identified) or the key
        return f"BatchTask(run={self.layout.run_id}, batch={self.name}, objects={len(self.entries)})"


def output_object_key(project: str, study: str, series: str, sop: str) -> str:
    """The research key of a de-identified object; its UIDs must be of the UID grammar
    (a retained UID comes from the source object: never a path of its choosing)."""
    if not all(is_uid(uid) for uid in (study, series, sop)):
        raise ValueError("an object key is built from UIDs of the UID grammar only")
    return f"{project}/objects/{study}/{series}/{sop}.dcm"


def to_parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


def read_parquet_bytes(data: bytes) -> pa.Table:
    """Read staged Parquet on this thread only (no dataset scan: nothing of it outlives the call)."""
    return pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)


def use_system_allocator() -> None:
    """Let Arrow allocate with the C library's malloc. pyarrow's default (mimalloc) keeps the
    pages it frees, so a long batch job's resident memory only grows; malloc hands them back
    (bench_export: about 130 MB less over the driver and two workers, at the same speed)."""
    pa.set_memory_pool(pa.system_memory_pool())


def process_batch(task: BatchTask) -> BatchResult:
    """Run one batch: its summary (also stored as the batch marker), or where it failed."""
    use_system_allocator()
    try:
        with stage("write", task.name):
            restricted = open_zone(task.settings, "restricted")
            try:
                return BatchSummary.from_json(restricted.get(task.layout.marker(task.batch)))
            except ObjectNotFound:
                pass
            research = open_zone(task.settings, "research")
        with stage("read", task.name):
            archive = open_archive(task.settings)
        outcomes = [_export_one(task, entry, archive, research) for entry in task.entries]
        with stage("write", task.name):
            return _stage(task, restricted, outcomes)
    except ExportStageError as exc:
        return exc.failure


def _stage(task: BatchTask, restricted: ObjectStore, outcomes: list[ObjectOutcome]) -> BatchSummary:
    """Write the batch's staged tables, then its marker (last: the batch is done)."""
    exported = [o for o in outcomes if o.quarantine is None]
    tables = rows_to_tables([o.flat for o in exported if o.flat is not None])
    tables["lineage"] = table_spec("lineage").to_arrow([o.lineage for o in exported if o.lineage is not None])
    tables["quarantine"] = table_spec("quarantine").to_arrow(
        [o.quarantine for o in outcomes if o.quarantine is not None]
    )
    for name, table in tables.items():
        restricted.put(task.layout.staged(name, task.batch), to_parquet_bytes(table))
    summary = BatchSummary.of(task.batch, outcomes)
    restricted.put(task.layout.marker(task.batch), summary.to_json())
    return summary


def _quarantine(task: BatchTask, entry: ManifestEntry, reason: str, tag_path: str | None = None) -> dict[str, Any]:
    return {
        "project": task.provenance.project,
        "request_id": task.provenance.request_id,
        "export_run_id": task.provenance.export_run_id,
        "source_key": entry.key,
        "source_etag": entry.etag,
        "reason": reason,
        "tag_path": tag_path,
    }


def _export_one(task: BatchTask, entry: ManifestEntry, archive: ObjectReader, research: ObjectStore) -> ObjectOutcome:
    with stage("read", task.name):
        try:
            info = archive.head(entry.key)
        except ObjectNotFound:
            return ObjectOutcome.quarantined(_quarantine(task, entry, "source_missing"))
        except PermanentStorageError:
            return ObjectOutcome.quarantined(_quarantine(task, entry, "source_unreadable"))
        if info.etag != entry.etag or info.size != int(entry.size):
            return ObjectOutcome.quarantined(_quarantine(task, entry, "source_changed"))
        data = archive.get(entry.key)
    read = len(data)
    if read != info.size:
        return ObjectOutcome.quarantined(_quarantine(task, entry, "source_changed"), read)
    with stage("deidentify", task.name):
        result = deidentify(data, task.deid)
    if result.outcome != "deidentified" or result.dataset is None or result.data is None:
        return ObjectOutcome.quarantined(_quarantine(task, entry, result.reason or "deid_failed", result.tag_path), read)
    ds = result.dataset
    study, series, sop = (str(ds.get(k, "") or "") for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
    if not (study and series and sop):  # no place in the research layout, no key in the tables
        return ObjectOutcome.quarantined(_quarantine(task, entry, "missing_uid"), read)
    if not all(is_uid(uid) for uid in (study, series, sop)):
        return ObjectOutcome.quarantined(_quarantine(task, entry, "bad_uid"), read)
    project = task.provenance.project
    out_key = output_object_key(project, study, series, sop)
    sha = hashlib.sha256(result.data).hexdigest()
    with stage("flatten", task.name):
        try:
            flat = flatten(ds, task.provenance, object_key=out_key, object_sha256=sha, object_size=len(result.data))
        except DicomParseError as exc:  # e.g. a required key missing: not publishable as a row
            return ObjectOutcome.quarantined(_quarantine(task, entry, f"flatten_{exc.code}"), read)
    with stage("write", task.name):
        research.put(task.layout.staging_object(out_key), result.data)
    source_uids = {v: k for k, v in result.uid_map.items()}
    lineage = {
        "project": project,
        "request_id": task.provenance.request_id,
        "export_run_id": task.provenance.export_run_id,
        "deid_profile": task.provenance.profile,
        "deid_options": sorted(task.provenance.options),
        "source_key": entry.key,
        "source_etag": entry.etag,
        "source_size": int(entry.size),
        "source_patient_id": entry.patient_id,
        "source_study_instance_uid": source_uids.get(study, entry.study_instance_uid),
        "source_series_instance_uid": source_uids.get(series, entry.series_instance_uid),
        "source_sop_instance_uid": source_uids.get(sop, entry.sop_instance_uid),
        "pseudo_patient_id": result.pseudo_patient_id,
        "study_instance_uid": study,
        "series_instance_uid": series,
        "sop_instance_uid": sop,
        "output_key": out_key,
        "output_sha256": sha,
        "output_size": len(result.data),
        "pixels": str(result.report.get("pixels", "unchanged")),
    }
    return ObjectOutcome.exported(flat, lineage, result.source_identifiers, read)
