"""Where one export run keeps its files: every run-folder key, spelled once.

Restricted zone (the staged research rows carry no identifiers; the batch
markers carry the source identifiers the gate must not find)::

    exports/<run_id>/state.json                   RunState (status, counts, versions, failure)
    exports/<run_id>/plan.json                    the batches (manifest entries)
    exports/<run_id>/staged/<table>/b-00000.parquet
    exports/<run_id>/staged/_done/b-00000.json    BatchSummary: written last = batch done
    exports/<run_id>/staged/_gate/b-00000.json    GateVerdict of the batch
    exports/<run_id>/gate-report.json             the run's gate report

Research zone (unpublished until the commit moves them to their output keys)::

    <project>/_staging/<run_id>/<output key>      a de-identified object

Everything under ``staged/`` and ``_staging/<run_id>/`` goes when the run ends
(``export.staging``); ``state.json``, ``plan.json`` and the gate report stay as its record.
"""

from __future__ import annotations

from dataclasses import dataclass

RUNS_PREFIX = "exports"
STATE_FILE = "state.json"


def batch_name(index: int) -> str:
    """A batch as runs name it in keys, states and errors (``b-00003``)."""
    return f"b-{index:05d}"


def staging_root(project: str) -> str:
    """Research-zone prefix under which every run of ``project`` stages its objects."""
    return f"{project}/_staging/"


def run_id_of_staging_key(key: str) -> str:
    """The run whose staged object ``key`` (under ``staging_root``) is."""
    return key.split("/")[2]


def state_key(run_id: str) -> str:
    return f"{RUNS_PREFIX}/{run_id}/{STATE_FILE}"


def run_id_of_state_key(key: str) -> str | None:
    """The run whose state ``key`` is, or None for any other key under ``exports/``."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == RUNS_PREFIX and parts[2] == STATE_FILE:
        return parts[1]
    return None


@dataclass(frozen=True)
class RunLayout:
    """The keys of one run: restricted-zone run folder and research-zone staging prefix."""

    run_id: str
    project: str

    @property
    def prefix(self) -> str:
        return f"{RUNS_PREFIX}/{self.run_id}"

    @property
    def state(self) -> str:
        return state_key(self.run_id)

    @property
    def plan(self) -> str:
        return f"{self.prefix}/plan.json"

    @property
    def staged_prefix(self) -> str:
        return f"{self.prefix}/staged/"

    def staged(self, table: str, batch: int) -> str:
        """A batch's staged rows of one table (Parquet)."""
        return f"{self.staged_prefix}{table}/{batch_name(batch)}.parquet"

    def marker(self, batch: int) -> str:
        """The batch's summary; its presence means the batch is done."""
        return f"{self.staged_prefix}_done/{batch_name(batch)}.json"

    def is_marker(self, key: str) -> bool:
        return key.startswith(f"{self.staged_prefix}_done/")

    def verdict(self, batch: int) -> str:
        """The batch's gate verdict (gated once; a resumed run reads it back)."""
        return f"{self.staged_prefix}_gate/{batch_name(batch)}.json"

    @property
    def gate_report(self) -> str:
        return f"{self.prefix}/gate-report.json"

    @property
    def staging_prefix(self) -> str:
        """Research-zone prefix of the run's unpublished objects."""
        return f"{staging_root(self.project)}{self.run_id}/"

    def staging_object(self, output_key: str) -> str:
        """Where a de-identified object waits until the commit publishes it at ``output_key``."""
        return f"{self.staging_prefix}{output_key}"
