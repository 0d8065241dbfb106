"""``python -m rollwave`` runs the CLI (used to start background orchestrators)."""

from rollwave.cli.app import main

if __name__ == "__main__":  # not when multiprocessing's spawn re-imports it (serve --workers)
    main()
