"""What each observed job reports: its name, inputs, outputs and figures.

A job kind describes its START from the call's arguments and its COMPLETE from the call's
result. Everything named here is a location, a table version, a count or an identifier of
lakehouse's own records (request, export run, dataset version): never a value read from a
DICOM object, never a person's name.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import (
    RunFacet,
    data_quality_assertions_dataset,
    dataset_version_dataset,
    output_statistics_output_dataset,
)

from lakehouse import lake
from lakehouse.config import Settings
from lakehouse.lineage.datasets import location, table_input, table_output, zone_input
from lakehouse.lineage.facets import RequestFacet, RunFiguresFacet

RESEARCH_TABLES = ("studies", "series", "instances", "attributes")


@dataclass
class Described:
    """One event's job-specific part."""

    inputs: list[InputDataset] = field(default_factory=list)
    outputs: list[OutputDataset] = field(default_factory=list)
    run_facets: dict[str, RunFacet] = field(default_factory=dict)


@dataclass(frozen=True)
class JobKind:
    """``start(settings, arguments)`` → (job name, START part); ``complete(settings, arguments,
    result)`` → COMPLETE part. ``phi_free_errors``: the job's error messages are PHI-free by the
    research path's rule (invariant 6) and may go into a FAIL event; otherwise only the type."""

    kind: str
    start: Callable[[Settings, Mapping[str, Any]], tuple[str, Described]]
    complete: Callable[[Settings, Mapping[str, Any], Any], Described]
    phi_free_errors: bool


# --- export ----------------------------------------------------------------------


class _RunState(Protocol):
    run_id: str
    project: str
    status: str
    exported: int
    quarantined: dict[str, int]
    withheld_opted_out: int
    table_versions: dict[str, int | None]
    gate_report: str | None


class _ExportOutcome(Protocol):
    @property
    def state(self) -> _RunState: ...


def _export_start(settings: Settings, arguments: Mapping[str, Any]) -> tuple[str, Described]:
    from lakehouse import governance  # the request's record (restricted zone)
    from lakehouse.deid import profile_label

    request = governance.get_request(settings, arguments["request_id"])
    facet = RequestFacet(
        requestId=request.id,
        protocol=request.protocol,
        approvers=len(request.approvers),
        deidProfile=profile_label(),
        deidOptions=sorted(request.options),
    )
    archive = zone_input(settings, "archive", {"lakehouse_request": facet})
    return f"export.{request.project}", Described(inputs=[archive])


def _export_complete(settings: Settings, arguments: Mapping[str, Any], outcome: _ExportOutcome) -> Described:
    state = outcome.state
    assertions = _gate_assertions(settings, state.gate_report)
    outputs = [
        table_output(settings, name, state.project, version, assertions.get(name))
        for name, version in sorted(state.table_versions.items())
        if version is not None and lake.table_spec(name).zone == "research"  # restricted ones stay unlisted
    ]
    figures = RunFiguresFacet(
        job="export", id=state.run_id, status=state.status,
        counts={"exported": state.exported, "quarantined": sum(state.quarantined.values()),
                "withheld_opted_out": state.withheld_opted_out},
    )
    return Described(outputs=outputs, run_facets={"lakehouse_run": figures})


def _gate_assertions(settings: Settings, report_key: str | None) -> dict[str, list[data_quality_assertions_dataset.Assertion]]:
    """The Great Expectations gate's checks per table, one assertion per (expectation, column),
    successful only if it passed in every batch. The report holds names and counts only."""
    if not report_key:
        return {}
    from lakehouse.storage import open_zone

    report = json.loads(open_zone(settings, "restricted").get(report_key))
    passed: dict[str, dict[tuple[str, str | None], bool]] = defaultdict(dict)
    for batch in report.get("batches", []):
        for check in batch.get("checks", []):
            key = (check["expectation"], check.get("column"))
            table = passed[check["table"]]
            table[key] = table.get(key, True) and bool(check["success"])
    return {
        table: [
            data_quality_assertions_dataset.Assertion(assertion=expectation, success=success, column=column)
            for (expectation, column), success in sorted(checks.items(), key=lambda item: (item[0][0], item[0][1] or ""))
        ]
        for table, checks in passed.items()
    }




# --- catalog sync ----------------------------------------------------------------


def _catalog_start(settings: Settings, arguments: Mapping[str, Any]) -> tuple[str, Described]:
    return "catalog.sync", Described(inputs=[zone_input(settings, "archive")])


def _catalog_complete(settings: Settings, arguments: Mapping[str, Any], result: Any) -> Described:
    catalog = lake.table(settings, "catalog")
    version = catalog.version()
    outputs = [] if version is None else [table_output(settings, "catalog", None, version)]
    counts = {k: int(v) for k, v in result.to_dict().items() if isinstance(v, int) and not isinstance(v, bool)}
    figures = RunFiguresFacet(job="catalog_sync", status="succeeded", counts=counts)
    return Described(inputs=[zone_input(settings, "archive")], outputs=outputs, run_facets={"lakehouse_run": figures})




# --- dataset build ---------------------------------------------------------------


def _build_start(settings: Settings, arguments: Mapping[str, Any]) -> tuple[str, Described]:
    options = arguments["options"]
    inputs = [table_input(settings, name, options.project) for name in RESEARCH_TABLES]
    return f"dataset.{options.project}.{options.name}", Described(inputs=inputs)


def _build_complete(settings: Settings, arguments: Mapping[str, Any], result: Any) -> Described:
    contents = result.contents
    inputs = [
        table_input(settings, name, contents.project, version) for name, version in sorted(contents.sources.items())
    ]
    namespace, name = location(settings.zone("datasets"), result.location.removeprefix(settings.datasets.uri))
    instances = sum(len(member.instances) for member in contents.members)
    statistics = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
        rowCount=instances, size=result.bytes, fileCount=result.files
    )
    output = OutputDataset(
        namespace=namespace, name=name,
        facets={"version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=f"v{result.version.version}")},
        outputFacets={"outputStatistics": statistics},
    )
    figures = RunFiguresFacet(
        job="dataset_build", id=f"{contents.project}/{result.version.ref}", status=result.version.status,
        counts={"members": len(contents.members), "instances": instances, "files": result.files,
                "exclusions": len(contents.exclusions)},
    )
    return Described(inputs=inputs, outputs=[output], run_facets={"lakehouse_run": figures})


JOBS = {
    "export": JobKind("export", _export_start, _export_complete, phi_free_errors=True),
    # Archive keys can hold source UIDs, and a sync's errors may name them: FAIL events carry the type only.
    "catalog_sync": JobKind("catalog_sync", _catalog_start, _catalog_complete, phi_free_errors=False),
    "dataset_build": JobKind("dataset_build", _build_start, _build_complete, phi_free_errors=True),
}
