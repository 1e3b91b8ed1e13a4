"""``python -m lakehouse`` runs the CLI."""

from lakehouse.cli import main

main()
