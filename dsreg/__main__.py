"""``python -m dsreg`` runs the CLI."""

from .cli.app import main

main()
