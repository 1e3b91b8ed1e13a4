"""De-identified datasets → Arrow rows for the research tables.

``flatten`` turns one de-identified instance into its rows (pure; safe in process
pools and Spark tasks); ``rows_to_tables`` turns a batch of them into Arrow tables in
the schemas of ``schemas/tables/{studies,series,instances,attributes}.json``.
Columns named by DICOM keyword are promoted from the header (see ``columns``).
"""

from lakehouse.flatten.columns import KEY_COLUMNS, RESEARCH_TABLES, promoted_columns
from lakehouse.flatten.rows import FlatRows, Provenance, flatten
from lakehouse.flatten.tables import rows_to_tables

__all__ = [
    "KEY_COLUMNS",
    "RESEARCH_TABLES",
    "FlatRows",
    "Provenance",
    "flatten",
    "promoted_columns",
    "rows_to_tables",
]
