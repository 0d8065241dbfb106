"""Shared fixtures."""

import os

# DBOS threads of a stopped in-process worker may still poll for a while; keep their warnings
# out of test output (real problems surface as failed assertions, not log lines).
os.environ.setdefault("ROLLWAVE_DBOS_LOG_LEVEL", "ERROR")
