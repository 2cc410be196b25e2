"""``python -m dsreg`` runs the CLI."""

from .cli import main

main()
