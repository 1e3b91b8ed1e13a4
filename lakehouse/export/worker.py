"""One batch of an export: read → verify → de-identify → stage objects and rows.

Workers do no quality checks: the driver gates each batch as it lands (``export.gate``),
so workers (and Spark executors) need neither Great Expectations nor its start-up time.

``process_batch`` is a pure function of its ``BatchTask`` and the process's own secrets:
everything else it needs travels inside the task (picklable), so the local process pool
and Spark tasks run the very same code and produce the same bytes. Nothing secret travels:
the worker looks the project key up itself and checks it against the task's ``key_check``;
zone credentials come from the local pool (``accept_credentials``, once per process) or
from the executor's own environment (``lakehouse.export.keys``). A batch is done when its marker
(``RunLayout.marker``) exists; it is written last, so a batch killed midway is
simply redone (its staged objects and files are overwritten with identical bytes). Staged
objects are written without a flush each and flushed together before the marker
(``ObjectStore.put_deferred``/``sync``): one flush per batch, the same durability.
A batch that fails returns a ``StageFailure`` instead of raising: it travels back
the same way from a process pool and from Spark, with the stage that failed.
A batch first HEADs its objects; when one cannot be read with a GET yet (archived and not
restored, ``storage.tiers``) it reads none of them and returns a ``BatchWaiting`` (no marker),
as it does when S3 refuses a GET with ``InvalidObjectState``: the run waits, it does not fail.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.config import Settings
from lakehouse.deid import DeidSettings, deidentify
from lakehouse.dicom.uid import is_uid
from lakehouse.errors import (
    ConfigError,
    DicomParseError,
    ObjectArchived,
    ObjectNotFound,
    PermanentStorageError,
)
from lakehouse.export.errors import ExportStageError, StageFailure, stage
from lakehouse.export.keys import (
    Credentials,
    environment_credentials,
    key_check,
    load_project_key,
    with_credentials,
)
from lakehouse.export.layout import RunLayout, batch_name
from lakehouse.export.results import BatchSummary, BatchWaiting, ObjectOutcome
from lakehouse.flatten import Provenance, flatten, rows_to_tables
from lakehouse.governance import ManifestEntry
from lakehouse.lake import table_spec
from lakehouse.storage import ObjectInfo, ObjectReader, ObjectStore, open_archive, open_zone
from lakehouse.storage.tiers import readability

RESEARCH_TABLES = ("studies", "series", "instances", "attributes")
RESTRICTED_TABLES = ("lineage", "quarantine")

BatchResult = BatchSummary | StageFailure | BatchWaiting


@dataclass(frozen=True)
class BatchTask:
    settings: Settings  # without access keys (``keys.without_credentials``)
    layout: RunLayout
    batch: int
    entries: tuple[ManifestEntry, ...]  # identified: never printed
    deid_options: frozenset[str]
    key_check: str  # ``keys.key_check`` of the driver's project key: the key itself never travels
    provenance: Provenance  # run id, request id, project, profile and options of every row
    generalizations: tuple[str, ...] = ()  # the run's k-anonymity steps (``deid.generalize``)

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


_pool_credentials: Credentials | None = None


def accept_credentials(credentials: Credentials) -> None:
    """Initializer of a local pool's processes: the driver's zone credentials, handed over
    once per process (never inside a task)."""
    global _pool_credentials
    _pool_credentials = dict(credentials)


def process_batch(task: BatchTask) -> BatchResult:
    """Run one batch with this process's credentials (a local pool's, else the environment's)."""
    credentials = _pool_credentials if _pool_credentials is not None else environment_credentials()
    return run_batch(task, credentials)


def run_batch(task: BatchTask, credentials: Credentials) -> BatchResult:
    """Run one batch: its summary (also stored as the batch marker), or where it failed."""
    use_system_allocator()
    settings = with_credentials(task.settings, credentials)
    try:
        with stage("write", task.name):
            restricted = open_zone(settings, "restricted")
            try:
                return BatchSummary.from_json(restricted.get(task.layout.marker(task.batch)))
            except ObjectNotFound:
                pass
            research = open_zone(settings, "research")
        with stage("deidentify", task.name):
            deid = _deid_settings(task, settings)
        with stage("read", task.name):
            archive = open_archive(settings)
            heads = [_head(archive, entry) for entry in task.entries]
        found = (readability(head) for head in heads if isinstance(head, ObjectInfo))
        unreadable = Counter(state for state in found if state != "readable")
        if unreadable:  # archived objects not restored yet: read nothing of the batch, wait
            return BatchWaiting(task.batch, dict(sorted(unreadable.items())))
        outcomes = []
        for entry, head in zip(task.entries, heads, strict=True):
            outcome = _export_one(task, deid, entry, head, archive, research)
            if outcome.waiting:  # S3 refused the GET (InvalidObjectState): the batch waits
                return BatchWaiting(task.batch, {outcome.waiting: 1})
            outcomes.append(outcome)
        with stage("write", task.name):
            staged = [task.layout.staging_object(o.lineage["output_key"]) for o in outcomes if o.lineage]
            research.sync(staged)  # the objects are on disk before the marker says the batch is done
            return _stage(task, restricted, outcomes)
    except ExportStageError as exc:
        return exc.failure


def _deid_settings(task: BatchTask, settings: Settings) -> DeidSettings:
    """De-identification with the project key this process finds, which must be the driver's."""
    project = task.provenance.project
    key = load_project_key(settings, project)
    if key_check(key) != task.key_check:
        raise ConfigError(
            f"the key of project {project} found here is not the driver's: give workers the same key "
            "(the [deid] key_env variable, or none and the restricted zone's key file)"
        )
    return DeidSettings(project=project, key=key, options=task.deid_options, generalizations=task.generalizations)


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


def _head(archive: ObjectReader, entry: ManifestEntry) -> ObjectInfo | str:
    """The object's HEAD (its storage class and restore status too), or why it is quarantined."""
    try:
        return archive.head(entry.key)
    except ObjectNotFound:
        return "source_missing"
    except PermanentStorageError:
        return "source_unreadable"


def _export_one(
    task: BatchTask,
    deid: DeidSettings,
    entry: ManifestEntry,
    info: ObjectInfo | str,
    archive: ObjectReader,
    research: ObjectStore,
) -> ObjectOutcome:
    with stage("read", task.name):
        if isinstance(info, str):
            return ObjectOutcome.quarantined(_quarantine(task, entry, info))
        if info.etag != entry.etag or info.size != int(entry.size):
            return ObjectOutcome.quarantined(_quarantine(task, entry, "source_changed"))
        try:
            data = archive.get(entry.key)
        except ObjectArchived:
            return ObjectOutcome.unreadable("invalid_object_state")
    read = len(data)
    if read != info.size:
        return ObjectOutcome.quarantined(_quarantine(task, entry, "source_changed"), read)
    with stage("deidentify", task.name):
        result = deidentify(data, deid)
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
        research.put_deferred(task.layout.staging_object(out_key), result.data)  # synced before the marker
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
