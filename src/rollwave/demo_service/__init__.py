"""Rollwave's demo service: a small HTTP service that plays one customer instance.

The ``local`` deployer runs it once per instance::

    python -m rollwave.demo_service --port 8101 --version 1.1 --config acme-prod.json \\
        --instance acme/prod

It answers ``/health``, ``/version``, ``/metrics`` and ``/api/...``, loads itself with
background traffic, and misbehaves exactly as the ``faults`` of its config say (see
``rollwave.demo_service.faults`` and ``docs/demo-service.md``).
"""

from rollwave.demo_service.faults import Effect, Fault, active_faults, combine

__all__ = ["Effect", "Fault", "active_faults", "combine"]
