"""Whether lakehouse may start worker processes from the calling program.

A ``spawn`` or ``forkserver`` child re-runs the program's main script (as ``__mp_main__``)
before it runs its task. A script without an ``if __name__ == "__main__":`` guard would run
again in every worker: its side effects twice (a request submitted again, an archive written
again) and, at its next pool, multiprocessing's bootstrapping error. Library calls that would
start workers (catalog sync's second reader, the local export engine) ask ``workers_allowed``
first and do the work in the calling process when the answer is no.

The rule is multiprocessing's own (``multiprocessing.spawn.get_preparation_data`` and
``_fixup_main_from_name``): nothing is re-run for a main without a file (a REPL, ``python -c``,
a notebook kernel) or a package's ``__main__`` run with ``-m``; otherwise the main file must
hold the guard at its top level.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path


def workers_allowed() -> bool:
    """True when a spawned worker would not re-run the caller's unguarded top-level code."""
    main = sys.modules.get("__main__")
    if main is None:
        return True
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None and (name == "__main__" or name.endswith(".__main__")):
        return True
    path = getattr(main, "__file__", None)
    return path is None or _guarded(str(path))


@cache
def _guarded(path: str) -> bool:
    """Whether the script at ``path`` has a top-level ``if __name__ == "__main__":``."""
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):  # a frozen or unreadable main: assume the worst
        return False
    return any(isinstance(node, ast.If) and _is_main_test(node.test) for node in tree.body)


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = (test.left, test.comparators[0])
    names = {s.id for s in sides if isinstance(s, ast.Name)}
    constants = {s.value for s in sides if isinstance(s, ast.Constant)}
    return names == {"__name__"} and constants == {"__main__"}
