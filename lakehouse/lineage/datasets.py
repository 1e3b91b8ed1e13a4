"""Zones and Delta tables as OpenLineage datasets, named by the OpenLineage naming convention:
a local path is namespace ``file`` with the absolute path as name; an S3 location is namespace
``s3://<bucket>`` with the key prefix as name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import (
    data_quality_assertions_dataset,
    data_quality_metrics_dataset,
    dataset_version_dataset,
    documentation_dataset,
    output_statistics_output_dataset,
    schema_dataset,
)

from lakehouse import lake
from lakehouse.config import Settings, ZoneSettings


def location(zone: ZoneSettings, *parts: str) -> tuple[str, str]:
    """(namespace, name) of a location inside ``zone``."""
    uri = zone.join(*parts)
    if zone.is_s3:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return f"s3://{bucket}", key or "/"
    return "file", uri.removeprefix("file://")


def zone_input(settings: Settings, zone: str, facets: Mapping[str, Any] | None = None) -> InputDataset:
    namespace, name = location(settings.zone(zone))
    return InputDataset(namespace=namespace, name=name, inputFacets=dict(facets or {}))


def table_dataset(
    settings: Settings, table: str, project: str | None, version: int | None = None
) -> tuple[str, str, dict[str, Any]]:
    """(namespace, name, facets) of one Delta table: its schema with the column descriptions,
    its description, and, with ``version``, that version and its row and file counts."""
    spec = lake.table_spec(table)
    namespace, name = location(settings.zone(spec.zone), spec.location(project))
    facets: dict[str, Any] = {
        "schema": schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(name=c.name, type=c.type, description=c.description or None)
                for c in spec.columns
            ]
        ),
        "documentation": documentation_dataset.DocumentationDatasetFacet(description=spec.description),
    }
    if version is not None:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=str(version))
        snapshot = lake.table(settings, table, project=project).open(version)
        if snapshot is not None:
            figures = snapshot.figures()
            facets["dataQualityMetrics"] = data_quality_metrics_dataset.DataQualityMetricsDatasetFacet(
                columnMetrics={}, rowCount=figures.rows, bytes=figures.bytes, fileCount=figures.files
            )
    return namespace, name, facets


def table_input(settings: Settings, table: str, project: str | None, version: int | None = None) -> InputDataset:
    namespace, name, facets = table_dataset(settings, table, project, version)
    return InputDataset(namespace=namespace, name=name, facets=facets)


def table_output(
    settings: Settings,
    table: str,
    project: str | None,
    version: int,
    assertions: list[data_quality_assertions_dataset.Assertion] | None = None,
) -> OutputDataset:
    """A table a job committed, at the version it left, with the rows that version's commit
    added and, when a gate checked it, the gate's assertions."""
    namespace, name, facets = table_dataset(settings, table, project, version)
    if assertions:
        facets["dataQualityAssertions"] = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
            assertions=assertions
        )
    added = lake.table(settings, table, project=project).rows_committed(version)
    output_facets: dict[str, Any] = {}
    if added is not None:
        output_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            rowCount=added
        )
    return OutputDataset(namespace=namespace, name=name, facets=facets, outputFacets=output_facets)
