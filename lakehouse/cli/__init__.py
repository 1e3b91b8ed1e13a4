"""The ``lakehouse`` command: typer wiring only, no logic.

One module per command group; ``main`` turns LakehouseError into a one-line
message on stderr and a non-zero exit code (tracebacks only with ``--debug``
or ``LAKEHOUSE_DEBUG=1``).
"""

from __future__ import annotations

import os
import sys

import typer

from lakehouse.cli import audit, catalog, deid, export, optout, request, setup, synth
from lakehouse.errors import LakehouseError

app = typer.Typer(
    name="lakehouse",
    help="Governed research data-lake exporter for medical imaging.\n\n"
    "Catalog a DICOM archive read-only, and export only approved, de-identified cohorts "
    "into Delta tables for research.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
setup.register(app)
app.add_typer(synth.app, name="synth")
app.add_typer(catalog.app, name="catalog")
app.add_typer(request.app, name="request")
app.add_typer(optout.app, name="optout")
app.add_typer(export.app, name="export")
app.add_typer(audit.app, name="audit")
deid.register(app)


def main() -> None:
    debug = "--debug" in sys.argv or os.environ.get("LAKEHOUSE_DEBUG") == "1"
    if "--debug" in sys.argv:
        sys.argv.remove("--debug")
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except LakehouseError as exc:
        if debug:
            raise
        typer.echo(f"lakehouse: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("lakehouse: aborted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors and the unexpected
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if debug:
            raise
        typer.echo(f"lakehouse: internal error ({type(exc).__name__}); rerun with --debug", err=True)
        sys.exit(1)
