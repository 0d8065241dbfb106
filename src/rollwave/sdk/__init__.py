"""Rollwave's Python flag SDK: :class:`RollwaveClient` and the OpenFeature provider.

The provider lives in :mod:`rollwave.sdk.openfeature` (imported lazily, so the client does not
need ``openfeature-sdk`` loaded).
"""

from rollwave.sdk.client import RollwaveClient

__all__ = ["RollwaveClient"]
