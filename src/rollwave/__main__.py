"""``python -m rollwave`` runs the CLI (used to start background orchestrators)."""

from rollwave.cli.app import main

main()
