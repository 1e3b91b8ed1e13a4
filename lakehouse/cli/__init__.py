"""The ``lakehouse`` command: typer wiring only, no logic.

One module per command group; ``main`` is the one error handler. A LakehouseError
becomes a one-line message on stderr and its exit code; a usage error (missing
option, bad value, unknown command, a group without a command) prints the usage
and exits 2; anything else is an internal error (tracebacks only with ``--debug``
or ``LAKEHOUSE_DEBUG=1``). With ``--json`` anywhere on the command line every
failure also prints one JSON object ``{"error", "code"}`` on stdout.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from lakehouse import __version__
from lakehouse.cli import audit, catalog, dataset, deid, export, keys, optout, request, setup, synth, tables
from lakehouse.cli._common import report_failure
from lakehouse.errors import LakehouseError

USAGE_EXIT_CODE = 2

app = typer.Typer(
    name="lakehouse",
    help="Governed research data-lake exporter for medical imaging.\n\n"
    "Catalog a DICOM archive read-only, and export only approved, de-identified cohorts "
    "into Delta tables for research.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"lakehouse {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit."),
    ] = False,
) -> None:
    pass


setup.register(app)
app.add_typer(synth.app, name="synth")
app.add_typer(catalog.app, name="catalog")
app.add_typer(request.app, name="request")
app.add_typer(optout.app, name="optout")
app.add_typer(export.app, name="export")
app.add_typer(dataset.app, name="dataset")
app.add_typer(audit.app, name="audit")
app.add_typer(tables.app, name="tables")
keys.register(app)
deid.register(app)


def main() -> None:
    args = sys.argv[1:]
    debug = "--debug" in args or os.environ.get("LAKEHOUSE_DEBUG") == "1"
    if "--debug" in args:
        sys.argv.remove("--debug")
    as_json = "--json" in args
    try:
        code = app(standalone_mode=False)
    except LakehouseError as exc:
        if debug:
            raise
        report_failure(str(exc), error_code(exc), as_json, exc.details)
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: typer's own copy of click raises these
        _usage_error(exc, as_json)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        report_failure("aborted", "aborted", as_json)
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        report_failure(f"internal error ({type(exc).__name__}); rerun with --debug", "internal_error", as_json)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)


def error_code(exc: Exception) -> str:
    """A stable code for scripts: the exception's class name in snake case (``Refused`` → ``refused``)."""
    name = type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))


def _usage_error(exc: typer.TyperException, as_json: bool) -> None:
    """Usage and the error for people (as typer prints them), or one line plus the JSON object."""
    code = "usage_error" if exc.exit_code == USAGE_EXIT_CODE else error_code(exc)
    show = getattr(exc, "show", None)
    if as_json or not callable(show):
        report_failure(exc.format_message().strip().splitlines()[0], code, as_json)
    else:
        show()
