"""An export run records the audit head after its last event in its state: deleting the newest
audit commit (the run's own `export.succeeded`) leaves a chain that checks out on its own, and
`audit verify` finds the cut through the run's checkpoint."""

from __future__ import annotations

from export_testing import lakehouse
from lakehouse_testing import Prepared

from lakehouse import governance, workflows
from lakehouse.export import export_status, run_export


def test_cut_tail_after_an_export_is_found_by_the_runs_checkpoint(small: Prepared) -> None:
    settings = small.settings
    state = run_export(settings, small.request_id, user="olga").state
    head = governance.verify_audit(settings).head_hash
    assert export_status(settings, state.run_id).audit_head == head  # the run saw the newest event
    assert workflows.verify_audit_trail(settings).ok
    log = small.root / "restricted" / "governance" / "audit" / "_delta_log"
    newest = max(log.glob("*.json"))
    newest.unlink()  # hide the export's last event
    assert governance.verify_audit(settings).ok  # the chain alone cannot tell
    result = workflows.verify_audit_trail(settings)
    assert not result.ok and result.first_broken is not None
    assert result.first_broken.problem.startswith(f"export run {state.run_id} recorded audit head {head[:16]}")
    done = lakehouse("audit", "verify", "--config", str(small.config))
    assert done.returncode == 4 and f"export run {state.run_id} recorded audit head" in done.stderr
