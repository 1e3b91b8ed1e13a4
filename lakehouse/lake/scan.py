"""A Delta table as an Arrow dataset for engines that push filters down (DuckDB), for readers
outside lakehouse: data scientists' notebooks, the demo's example.

``DeltaTable.to_pyarrow_dataset()`` is a lazy scan: DuckDB hands it its ``WHERE`` terms and
columns, and Arrow skips the row groups whose statistics rule them out and the columns not asked
for. One catch: files that a Delta merge or delete rewrote (delta-rs writes them through
DataFusion) store text as ``string_view``, appended files as ``string``, and Arrow has no
comparison between the two, so a filter pushed into a table holding both kinds fails. ``scan``
gives such a table its text columns as ``string_view`` (right for every file; files stored as
``string`` are then read without statistics pruning), and keeps ``string`` where every file
stores it, so an append-only table (``attributes``, ``instances``) prunes everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.fs as pa_fs
from deltalake import DeltaTable

if TYPE_CHECKING:  # pyarrow.dataset imports pandas: loaded by the first read, not on import
    import pyarrow.dataset as pds


def scan(
    uri: str,
    *,
    version: int | None = None,
    storage_options: dict[str, str] | None = None,
    filesystem: pa_fs.FileSystem | None = None,
) -> pds.Dataset:
    """The table at ``uri`` (current, or an older ``version``) as an Arrow dataset.
    ``filesystem``: one rooted at the table's folder; by default a native local filesystem for
    a local table, deltalake's own for object stores."""
    table = DeltaTable(uri, version=version, storage_options=storage_options)
    if filesystem is None and "://" not in uri.removeprefix("file://"):
        filesystem = pa_fs.SubTreeFileSystem(_local_path(table.table_uri), pa_fs.LocalFileSystem())
    dataset = table.to_pyarrow_dataset(filesystem=filesystem)
    stored = (f.type for fragment in dataset.get_fragments() for f in fragment.physical_schema)
    if not any(pa.types.is_string_view(kind) for kind in stored):
        return dataset
    views = pa.schema([f.with_type(pa.string_view()) if pa.types.is_string(f.type) else f for f in dataset.schema])
    return table.to_pyarrow_dataset(filesystem=filesystem, schema=views)


def _local_path(table_uri: str) -> str:
    parsed = urlparse(table_uri)
    return str(Path(unquote(parsed.path) if parsed.scheme else table_uri))
