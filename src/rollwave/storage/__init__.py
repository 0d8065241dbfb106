"""State: tables, migrations, the event log and repositories."""
