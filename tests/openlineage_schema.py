"""Validating OpenLineage run events.

openlineage-python (the pinned 1.54.0 wheel) carries the OpenLineage object model as generated
classes but no JSON schema file, so the run-event schema is restated here from the OpenLineage
2-0-2 specification its classes name in every ``schemaURL``: the event, run, job, datasets and
the base facet (``_producer`` and ``_schemaURL`` URIs), plus the fields required by each standard
facet lakehouse sends. lakehouse's own facets are checked against the schemas it ships
(``schemas/lineage/``), which their ``_schemaURL`` names.
"""

from __future__ import annotations

from typing import Any

import jsonschema

from lakehouse import resources

SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
OURS = "https://lakehouse.invalid/schemas/lineage/"
_URI = {"type": "string", "format": "uri"}
_FACET = {"type": "object", "required": ["_producer", "_schemaURL"],
          "properties": {"_producer": _URI, "_schemaURL": _URI}}
_FACETS = {"type": "object", "additionalProperties": {"$ref": "#/$defs/Facet"}}
_DATASET = {"type": "object", "required": ["namespace", "name"],
            "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "facets": _FACETS}}

RUN_EVENT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {"Facet": _FACET},
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "run", "job", "eventType"],
    "properties": {
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": _URI,
        "schemaURL": {"const": f"{SPEC}#/$defs/RunEvent"},
        "run": {"type": "object", "required": ["runId"],
                "properties": {"runId": {"type": "string", "format": "uuid"}, "facets": _FACETS}},
        "job": {"type": "object", "required": ["namespace", "name"],
                "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "facets": _FACETS}},
        "inputs": {"type": "array", "items": {"allOf": [_DATASET, {"properties": {"inputFacets": _FACETS}}]}},
        "outputs": {"type": "array", "items": {"allOf": [_DATASET, {"properties": {"outputFacets": _FACETS}}]}},
    },
}

# Fields each standard facet we send must have (from its facet schema in the specification).
STANDARD_FACETS: dict[str, list[str]] = {
    "SchemaDatasetFacet": ["fields"],
    "DocumentationDatasetFacet": ["description"],
    "DatasetVersionDatasetFacet": ["datasetVersion"],
    "DataQualityMetricsDatasetFacet": ["columnMetrics"],
    "DataQualityAssertionsDatasetFacet": ["assertions"],
    "OutputStatisticsOutputDatasetFacet": [],
    "ErrorMessageRunFacet": ["message", "programmingLanguage"],
    "JobTypeJobFacet": ["processingType", "integration"],
}
_FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def validate_event(event: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless ``event`` is a valid OpenLineage run event whose
    every facet is valid against its own schema."""
    jsonschema.Draft202012Validator(RUN_EVENT, format_checker=_FORMATS).validate(event)
    for facet in _facets(event):
        url = facet["_schemaURL"]
        name = url.rsplit("/", 1)[-1]
        if url.startswith(OURS):
            file, _, pointer = url.removeprefix(OURS).partition("#")
            schema = resources.read_json("lineage", file)
            definition = pointer.removeprefix("/$defs/")
            jsonschema.Draft202012Validator(
                {**schema, "$ref": f"#/$defs/{definition}"}, format_checker=_FORMATS
            ).validate(facet)
        else:
            assert url.startswith("https://openlineage.io/spec/facets/"), url
            missing = [f for f in STANDARD_FACETS[name] if f not in facet]
            assert not missing, f"{name} lacks {missing}"


def _facets(event: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(event["run"].get("facets", {}).values()) + list(event["job"].get("facets", {}).values())
    for dataset in event.get("inputs", []) + event.get("outputs", []):
        for key in ("facets", "inputFacets", "outputFacets"):
            found += list(dataset.get(key, {}).values())
    return found
