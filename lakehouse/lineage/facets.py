"""lakehouse's own OpenLineage facets: the governance request an export ran under, and the
figures of a run. Both hold identifiers and counts of lakehouse's own records only, never a
value read from a DICOM object. Their JSON schemas ship in ``schemas/lineage/``."""

from __future__ import annotations

from typing import ClassVar

import attr
from openlineage.client.event_v2 import set_producer
from openlineage.client.facet_v2 import InputDatasetFacet, RunFacet

import lakehouse

PRODUCER = f"https://pypi.org/project/lakehouse/{lakehouse.__version__}"
# Where a consumer finds the custom facets' schemas; the files are schemas/lineage/<name>.json.
SCHEMA_BASE = "https://lakehouse.invalid/schemas/lineage/"
set_producer(PRODUCER)  # the standard facets built here are lakehouse's too


@attr.define
class RequestFacet(InputDatasetFacet):
    """The approved request an export read the archive under (``lakehouse_request``)."""

    requestId: str  # OpenLineage names facet fields in camelCase
    protocol: str
    approvers: int  # how many approved it; their identities stay in the audit chain
    deidProfile: str
    deidOptions: list[str]
    _additional_skip_redact: ClassVar[list[str]] = ["requestId", "approvers", "deidProfile", "deidOptions"]

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_BASE + "LakehouseRequestFacet.json#/$defs/LakehouseRequestFacet"


@attr.define
class RunFiguresFacet(RunFacet):
    """The run as lakehouse records it (``lakehouse_run``): its own id and status, and counts."""

    job: str  # export | catalog_sync | dataset_build
    id: str | None = attr.field(default=None)  # export run id, dataset version ref
    status: str | None = attr.field(default=None)
    counts: dict[str, int] = attr.field(factory=dict)
    _additional_skip_redact: ClassVar[list[str]] = ["job", "id", "status", "counts"]

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_BASE + "LakehouseRunFacet.json#/$defs/LakehouseRunFacet"
