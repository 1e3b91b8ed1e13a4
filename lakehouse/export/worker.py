"""One batch of an export: read → verify → de-identify → stage objects and rows.

Workers do no quality checks: the driver gates each batch as it lands (``commit.gate_batch``),
so workers (and Spark executors) need neither Great Expectations nor its start-up time.

``process_batch`` is a pure function of its ``BatchTask`` (everything it needs
travels inside it, picklable), so the local process pool and Spark tasks run
the very same code and produce the same bytes. A batch is done when its marker
(``staged/_done/<batch>.json``) exists; it is written last, so a batch killed
midway is simply redone (its staged objects and files are overwritten with
identical bytes).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.config import Settings
from lakehouse.deid import DeidSettings, deidentify
from lakehouse.errors import DicomParseError, ObjectNotFound, PermanentStorageError
from lakehouse.export.state import batch_name, run_prefix
from lakehouse.flatten import Provenance, flatten, rows_to_tables
from lakehouse.lake import table_spec
from lakehouse.storage import ObjectReader, ObjectStore, open_archive, open_zone

RESEARCH_TABLES = ("studies", "series", "instances", "attributes")
RESTRICTED_TABLES = ("lineage", "quarantine")


@dataclass(frozen=True)
class BatchTask:
    settings: Settings
    run_id: str
    request_id: str
    project: str
    batch_index: int
    entries: tuple[dict[str, Any], ...]  # manifest entries: key, etag, size, patient_id, ...
    deid: DeidSettings
    provenance: Provenance

    def __repr__(self) -> str:  # never print entries (identified) or the key
        return f"BatchTask(run={self.run_id}, batch={self.batch_index}, objects={len(self.entries)})"


def staged_key(run_id: str, table: str, index: int) -> str:
    return f"{run_prefix(run_id)}/staged/{table}/{batch_name(index)}.parquet"


def marker_key(run_id: str, index: int) -> str:
    return f"{run_prefix(run_id)}/staged/_done/{batch_name(index)}.json"


def gate_key(run_id: str, index: int) -> str:
    return f"{run_prefix(run_id)}/staged/_gate/{batch_name(index)}.json"


def staging_object_key(project: str, run_id: str, output_key: str) -> str:
    """Where a de-identified object waits (research zone, unpublished) until the commit."""
    return f"{project}/_staging/{run_id}/{output_key}"


def output_object_key(project: str, study: str, series: str, sop: str) -> str:
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


def process_batch(task: BatchTask) -> dict[str, Any]:
    """Run one batch; returns its summary (also stored as the batch marker)."""
    use_system_allocator()
    restricted = open_zone(task.settings, "restricted")
    marker = marker_key(task.run_id, task.batch_index)
    try:
        return dict(json.loads(restricted.get(marker)))
    except ObjectNotFound:
        pass
    archive = open_archive(task.settings)
    research = open_zone(task.settings, "research")
    flat_rows, lineage, quarantine = [], [], []
    forbidden: set[str] = set()
    bytes_read = bytes_written = 0
    for entry in task.entries:
        outcome = _export_one(task, entry, archive, research)
        bytes_read += outcome.get("bytes_read", 0)
        if "quarantine" in outcome:
            quarantine.append(outcome["quarantine"])
            continue
        flat_rows.append(outcome["flat"])
        lineage.append(outcome["lineage"])
        forbidden |= outcome["forbidden"]
        bytes_written += outcome["lineage"]["output_size"]
    tables = rows_to_tables(flat_rows)
    tables["lineage"] = table_spec("lineage").to_arrow(lineage)
    tables["quarantine"] = table_spec("quarantine").to_arrow(quarantine)
    for name, table in tables.items():
        restricted.put(staged_key(task.run_id, name, task.batch_index), to_parquet_bytes(table))
    summary = {
        "batch": task.batch_index,
        "exported": len(lineage),
        "quarantined": dict(Counter(q["reason"] for q in quarantine)),
        "bytes_read": bytes_read,
        "bytes_written": bytes_written,
        # Source identifiers of this batch: the gate checks none reached the research tables.
        "forbidden": sorted(forbidden),
    }
    restricted.put(marker, json.dumps(summary).encode())
    return summary


def _quarantine(task: BatchTask, entry: dict[str, Any], reason: str, tag_path: str | None = None) -> dict[str, Any]:
    return {
        "project": task.project,
        "request_id": task.request_id,
        "export_run_id": task.run_id,
        "source_key": entry["key"],
        "source_etag": entry.get("etag"),
        "reason": reason,
        "tag_path": tag_path,
    }


def _export_one(task: BatchTask, entry: dict[str, Any], archive: ObjectReader, research: ObjectStore) -> dict[str, Any]:
    key = entry["key"]
    try:
        info = archive.head(key)
    except ObjectNotFound:
        return {"quarantine": _quarantine(task, entry, "source_missing")}
    except PermanentStorageError:
        return {"quarantine": _quarantine(task, entry, "source_unreadable")}
    if info.etag != entry["etag"] or info.size != int(entry["size"]):
        return {"quarantine": _quarantine(task, entry, "source_changed")}
    data = archive.get(key)
    if len(data) != info.size:
        return {"quarantine": _quarantine(task, entry, "source_changed"), "bytes_read": len(data)}
    result = deidentify(data, task.deid)
    if result.outcome != "deidentified" or result.dataset is None or result.data is None:
        return {
            "quarantine": _quarantine(task, entry, result.reason or "deid_failed", result.tag_path),
            "bytes_read": len(data),
        }
    ds = result.dataset
    study, series, sop = (str(ds.get(k, "") or "") for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
    if not (study and series and sop):  # no place in the research layout, no key in the tables
        return {"quarantine": _quarantine(task, entry, "missing_uid"), "bytes_read": len(data)}
    out_key = output_object_key(task.project, study, series, sop)
    sha = hashlib.sha256(result.data).hexdigest()
    try:
        flat = flatten(ds, task.provenance, object_key=out_key, object_sha256=sha, object_size=len(result.data))
    except DicomParseError as exc:  # e.g. a required key missing: not publishable as a row
        return {"quarantine": _quarantine(task, entry, f"flatten_{exc.code}"), "bytes_read": len(data)}
    research.put(staging_object_key(task.project, task.run_id, out_key), result.data)
    source_uids = {v: k for k, v in result.uid_map.items()}
    lineage = {
        "project": task.project,
        "request_id": task.request_id,
        "export_run_id": task.run_id,
        "deid_profile": task.provenance.profile,
        "deid_options": sorted(task.provenance.options),
        "source_key": key,
        "source_etag": entry["etag"],
        "source_size": int(entry["size"]),
        "source_patient_id": entry.get("patient_id"),
        "source_study_instance_uid": source_uids.get(study, entry.get("study_instance_uid")),
        "source_series_instance_uid": source_uids.get(series, entry.get("series_instance_uid")),
        "source_sop_instance_uid": source_uids.get(sop, entry.get("sop_instance_uid")),
        "pseudo_patient_id": result.pseudo_patient_id,
        "study_instance_uid": study,
        "series_instance_uid": series,
        "sop_instance_uid": sop,
        "output_key": out_key,
        "output_sha256": sha,
        "output_size": len(result.data),
        "pixels": str(result.report.get("pixels", "unchanged")),
    }
    return {
        "flat": flat,
        "lineage": lineage,
        "forbidden": set(result.source_identifiers),
        "bytes_read": len(data),
    }
