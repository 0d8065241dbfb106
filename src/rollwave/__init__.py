"""Rollwave: release software to a fleet of customized customer instances safely.

The public surface is small; most users touch the ``rollwave`` CLI, the HTTP API or the flag SDK.
"""

from rollwave.errors import Problem, RollwaveError, ValidationFailed

__version__ = "0.1.0"

__all__ = ["Problem", "RollwaveError", "ValidationFailed", "__version__"]
