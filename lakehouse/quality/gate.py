"""The quality gate: Great Expectations suites over one export batch, before commit.

Runs in an ephemeral GX context with a pandas datasource over the Arrow tables
(``great_expectations`` is imported here lazily; it costs seconds and is only
needed by the driver). Results keep counts and names, never cell values: GX is
asked for no unexpected-value lists, and only counts are copied into the report.
"""

from __future__ import annotations

import logging
import numbers
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from functools import cache
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.quality.forbidden import ForbiddenMatcher, normalize
from lakehouse.quality.suite import Suite, TableRules, load_suite

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}
_COUNT_KEYS = ("element_count", "unexpected_count", "missing_count")
# GX copies an expectation's configuration many times while planning it, so a value
# set of thousands of identifiers costs seconds per expectation. Key sets are passed
# as suite parameters; forbidden sets are cut to the identifiers present (below).


@dataclass
class GateResult:
    """``failures`` name table/expectation[/column]; ``report`` is the JSON-able detail."""

    passed: bool
    failures: list[str]
    report: dict[str, Any] = field(default_factory=dict)


def run_gate(
    tables: dict[str, pa.Table], *, forbidden_values: set[str], expected_instances: int
) -> GateResult:
    """Validate a batch of research tables; ``passed`` is False if any check fails."""
    suite = load_suite()
    forbidden = sorted(normalize(forbidden_values))
    figures = {"expected_instances": expected_instances}
    checks: list[dict[str, Any]] = []
    forbidden_array = pa.array(forbidden, type=pa.string())
    parameters: dict[str, Any] = {}
    for name, rules in suite.tables.items():
        if name in tables:
            keys = tables[name].column(rules.keys[0]).drop_null().unique().to_pylist()
            parameters[_keys_parameter(name)] = sorted(keys)
    runner = _runner()
    matcher = ForbiddenMatcher(forbidden) if forbidden else None
    present = {}
    for name, rules in suite.tables.items():
        table = tables.get(name)
        if table is None:
            checks.append(_check(name, "table_present", None, success=False))
            continue
        present[name] = table
        expectations = _expectations(suite, rules, table, tables, figures)
        checks += runner.validate(name, _frame(table, _columns_of(expectations)), expectations, parameters)
        checks += _free_text_checks(name, rules, table, matcher)
    checks += _no_identifier_cells(runner, present, forbidden_array)
    failures = [_failure_name(c) for c in checks if not c["success"]]
    report = {
        "suite": suite.name,
        "suite_version": suite.version,
        "passed": not failures,
        "expected_instances": expected_instances,
        "forbidden_identifier_count": len(forbidden),
        "rows": {name: tables[name].num_rows for name in suite.tables if name in tables},
        "checks": checks,
        "failures": failures,
    }
    if failures:
        log.warning("quality gate failed: %d of %d checks", len(failures), len(checks))
    return GateResult(passed=not failures, failures=failures, report=report)


def _expectations(
    suite: Suite,
    rules: TableRules,
    table: pa.Table,
    tables: dict[str, pa.Table],
    figures: dict[str, int],
) -> list[Any]:
    import great_expectations.expectations as gxe

    out: list[Any] = [gxe.ExpectColumnValuesToNotBeNull(column=key) for key in rules.keys]
    if len(rules.keys) == 1:
        out.append(gxe.ExpectColumnValuesToBeUnique(column=rules.keys[0]))
    else:
        out.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=list(rules.keys)))
    out += [gxe.ExpectColumnValuesToMatchRegex(column=c, regex=suite.uid_pattern) for c in rules.uid_columns]
    for column, target in rules.references.items():
        if target in tables:
            value_set = {"$PARAMETER": _keys_parameter(target)}
            out.append(gxe.ExpectColumnValuesToBeInSet(column=column, value_set=value_set))
    if rules.row_count is not None:
        out.append(gxe.ExpectTableRowCountToEqual(value=figures[rules.row_count]))
    low, high = suite.date_min, suite.date_max()
    for f in table.schema:
        if pa.types.is_date(f.type):
            out.append(gxe.ExpectColumnValuesToBeBetween(column=f.name, min_value=low, max_value=high))
        elif pa.types.is_timestamp(f.type):
            out.append(
                gxe.ExpectColumnValuesToBeBetween(column=f.name, min_value=_utc(low), max_value=_utc(high))
            )
    return out


def _columns_of(expectations: list[Any]) -> list[str]:
    """The columns the expectations read: GX gets only those (it converts and hashes every column
    of the frame it is given; an attributes table has a hundred thousand rows per batch)."""
    named = ([getattr(e, "column", None), *(getattr(e, "column_list", None) or ())] for e in expectations)
    return sorted({column for columns in named for column in columns if column})


def _keys_parameter(table: str) -> str:
    return f"keys_of_{table}"


def _no_identifier_cells(
    runner: _Runner, tables: dict[str, pa.Table], forbidden: pa.Array
) -> list[dict[str, Any]]:
    """No cell of any string or list<string> column of any table equals a source identifier.

    One GX expectation over the distinct string cells of the batch (GX's cost is per validation
    and per row); when it fails, pyarrow names the offending tables and columns."""
    cells = {
        (name, column): _string_cells(table, column)
        for name, table in tables.items()
        for column in _string_columns(table)
    }
    chunks = [chunk for values in cells.values() for chunk in values.chunks]
    if not sum(len(chunk) for chunk in chunks):
        return []
    # Distinct cells: a value equals an identifier wherever it sits, so GX sees each value once.
    values = pc.unique(pa.chunked_array(chunks, type=pa.string()))
    frame = pa.table({"string_cells": values}).to_pandas()
    checks = runner.validate(
        "string_cells", frame, [_not_in_set("string_cells", values, forbidden)], {}, report_as="batch"
    )
    if all(c["success"] for c in checks):
        return checks
    failed, checks = checks, []  # the failure is reported per offending table and column instead
    for (name, column), column_cells in cells.items():
        hits = (
            int(pc.sum(pc.is_in(column_cells, value_set=forbidden)).as_py() or 0) if len(column_cells) else 0
        )
        if hits:
            checks.append(
                _check(
                    name,
                    "expect_column_values_to_not_be_in_set",
                    column,
                    success=False,
                    unexpected_count=hits,
                )
            )
    return checks or failed  # fail closed even if no column could be named


def _string_columns(table: pa.Table) -> list[str]:
    return [f.name for f in table.schema if pa.types.is_string(f.type)] + _list_of_string_columns(table)


def _string_cells(table: pa.Table, column: str) -> pa.ChunkedArray:
    cells = table.column(column)
    if pa.types.is_list(table.schema.field(column).type):
        return pa.chunked_array([cells.combine_chunks().flatten()], type=pa.string())
    return cells


def _not_in_set(column: str, values: pa.Array | pa.ChunkedArray, forbidden: pa.Array) -> Any:
    """``column`` holds none of ``forbidden``. The set given to GX is the forbidden
    identifiers present in the column: the same check, at a cost that does not grow
    with the number of identifiers in the run."""
    import great_expectations.expectations as gxe

    present = pc.unique(pc.filter(values, pc.is_in(values, value_set=forbidden))).to_pylist()
    return gxe.ExpectColumnValuesToNotBeInSet(column=column, value_set=sorted(present))


def _free_text_checks(
    name: str, rules: TableRules, table: pa.Table, matcher: ForbiddenMatcher | None
) -> list[dict[str, Any]]:
    """Identifiers inside text (not just equal to it): a custom check outside GX."""
    if matcher is None:
        return []
    checks = []
    for column in rules.free_text:
        if column not in table.column_names:
            checks.append(_check(name, "column_present", column, success=False))
            continue
        hits = matcher.count_rows(table.column(column))
        checks.append(
            _check(
                name,
                "no_source_identifier_in_text",
                column,
                success=hits == 0,
                element_count=table.num_rows,
                unexpected_count=hits,
            )
        )
    return checks


def preload() -> threading.Thread:
    """Import Great Expectations in a background thread, so the first gate does not wait for
    it (the export driver starts this while its workers de-identify the first batches)."""
    thread = threading.Thread(target=_great_expectations, name="gx-preload", daemon=True)
    thread.start()
    return thread


def _great_expectations() -> Any:
    """The ``great_expectations`` module, imported with its usage analytics off."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations

    return great_expectations


def warm_up() -> None:
    """Import Great Expectations and build the context now (seconds), so the first gate does not."""
    _runner()


@cache
def _runner() -> _Runner:
    """One GX context per process: creating it costs more than validating a batch."""
    return _Runner()


class _Runner:
    """One ephemeral GX context with a pandas datasource; one asset per table name."""

    def __init__(self) -> None:
        gx = _great_expectations()
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        self._gx = gx
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        )
        self._context = gx.get_context(mode="ephemeral", project_config=config)
        self._source = self._context.data_sources.add_pandas("lakehouse_batch")
        self._definitions: dict[str, Any] = {}

    def validate(
        self,
        asset_name: str,
        frame: pd.DataFrame,
        expectations: list[Any],
        parameters: dict[str, Any],
        report_as: str | None = None,
    ) -> list[dict[str, Any]]:
        if asset_name not in self._definitions:
            asset = self._source.add_dataframe_asset(asset_name)
            self._definitions[asset_name] = asset.add_batch_definition_whole_dataframe("batch")
        batch = self._definitions[asset_name].get_batch(batch_parameters={"dataframe": frame})
        suite = self._gx.ExpectationSuite(name=f"research.{asset_name}")
        for expectation in expectations:
            suite.add_expectation(expectation)
        result = batch.validate(suite, result_format=_RESULT_FORMAT, expectation_parameters=parameters)
        checks = []
        for r in result.results:
            config = r.expectation_config
            assert config is not None, "GX returns each result with its expectation"
            kwargs = config.kwargs
            column = kwargs.get("column") or "+".join(kwargs.get("column_list") or ()) or None
            raised = bool(r.exception_info and r.exception_info.get("raised_exception"))
            counts = {k: _count(r.result.get(k)) for k in _COUNT_KEYS if _count(r.result.get(k)) is not None}
            if config.type == "expect_table_row_count_to_equal":
                counts["observed_rows"] = _count(r.result.get("observed_value"))
                counts["expected_rows"] = _count(kwargs.get("value"))
            checks.append(
                _check(
                    report_as or asset_name,
                    config.type,
                    column,
                    success=bool(r.success) and not raised,
                    error=raised,
                    **counts,
                )
            )
        return checks


def _check(
    table: str, expectation: str, column: str | None, *, success: bool, **extra: Any
) -> dict[str, Any]:
    return {"table": table, "expectation": expectation, "column": column, "success": success} | extra


def _failure_name(check: dict[str, Any]) -> str:
    parts = [check["table"], check["expectation"]] + ([check["column"]] if check["column"] else [])
    return "/".join(parts)


def _frame(table: pa.Table, columns: list[str]) -> pd.DataFrame:
    """Those of ``columns`` the table has, when scalar, as pandas (dates and timestamps as Python
    objects: no ns overflow). A missing one fails its expectation in GX: fail closed."""
    scalar = [f.name for f in table.schema if f.name in columns and not pa.types.is_list(f.type)]
    return table.select(scalar).to_pandas(date_as_object=True, timestamp_as_object=True)


def _list_of_string_columns(table: pa.Table) -> list[str]:
    return [
        f.name for f in table.schema if pa.types.is_list(f.type) and pa.types.is_string(f.type.value_type)
    ]


def _count(value: Any) -> int | None:
    """GX counts as plain ints (they may arrive as numpy integers); anything else → None."""
    return int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else None


def _utc(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)
