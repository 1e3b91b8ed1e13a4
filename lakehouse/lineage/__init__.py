"""OpenLineage run events for the jobs that move data: exports, catalog syncs, dataset builds.

Lineage tools (Marquez, DataHub, ...) read OpenLineage; the restricted ``lineage`` table stays the
governed record of which source became which pseudonym. A job function is decorated once::

    @lineage.emits(lineage.EXPORT)
    def run_export(settings, request_id, ...): ...

and each run then sends START, then COMPLETE or FAIL, to the transport ``[lineage]`` names
(``none`` by default; ``file``; ``http``). Events carry locations, table versions, row counts,
the Great Expectations gate's assertions, and for exports the request as a facet (id, protocol,
approvers' count, de-identification profile and options): never an identified value. Lineage
never fails a job: a transport or description error is a logged warning.
"""

from lakehouse.lineage.observe import CATALOG_SYNC, DATASET_BUILD, EXPORT, emits

__all__ = ["CATALOG_SYNC", "DATASET_BUILD", "EXPORT", "emits"]
