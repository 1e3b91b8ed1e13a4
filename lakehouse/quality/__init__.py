"""Quality gates that decide whether an export batch may be committed.

``run_gate`` validates the four research tables of a batch with Great Expectations
(suite data: ``schemas/quality/research.json``) plus a free-text identifier search.
Its ``GateResult`` holds names and counts, never values; the export stores it per
batch and writes the run's one report (``lakehouse.export.gate``).
"""

from lakehouse.quality.gate import GateResult, preload, run_gate, warm_up

__all__ = ["GateResult", "preload", "run_gate", "warm_up"]
