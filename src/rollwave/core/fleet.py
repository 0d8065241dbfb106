"""The fleet as the functional core sees it: a project plus every instance, resolved.

:func:`build_fleet` turns validated file models into :class:`FleetInstance` records that carry
everything planning needs (facts for tag expressions, windows in the pure form, the deployer
name). It does no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rollwave.core.model import Customer, Policy, Project
from rollwave.core.tagexpr import Facts
from rollwave.core.windows import WindowSpec


@dataclass(frozen=True, slots=True)
class FleetInstance:
    """One instance, resolved: ``key`` is ``customer/instance``."""

    key: str
    customer: str
    name: str
    environment: str
    services: tuple[str, ...]
    tier: str | None
    region: str | None
    tags: frozenset[str]
    labels: Mapping[str, str]
    windows: tuple[WindowSpec, ...]
    deployer: str
    target: Mapping[str, Any]
    url: str | None
    facts: Facts

    def runs(self, service: str) -> bool:
        return service in self.services


@dataclass(frozen=True, slots=True)
class Fleet:
    """The project settings and every instance, sorted by key."""

    project: Project
    customers: Mapping[str, Customer]
    instances: tuple[FleetInstance, ...]
    _by_key: dict[str, FleetInstance] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_key.update({inst.key: inst for inst in self.instances})

    def __iter__(self) -> Iterator[FleetInstance]:
        return iter(self.instances)

    def __len__(self) -> int:
        return len(self.instances)

    def get(self, key: str) -> FleetInstance | None:
        return self._by_key.get(key)

    def policy(self, name: str | None) -> Policy:
        """The named policy, or the project's default; KeyError if unknown."""
        return self.project.policies[name or self.project.default_policy]


def instance_facts(customer: Customer, name: str, environment: str, tags: frozenset[str],
                   labels: Mapping[str, str]) -> Facts:
    """Attributes and tags a tag expression can test for one instance."""
    attributes: dict[str, str] = {**customer.labels, **labels}
    attributes.update({"customer": customer.id, "instance": name, "environment": environment})
    if customer.tier:
        attributes["tier"] = customer.tier
    if customer.region:
        attributes["region"] = customer.region
    return Facts(attributes=attributes, tags=tags)


def build_fleet(project: Project, customers: Mapping[str, Customer]) -> Fleet:
    """Resolve customers' instances against project defaults (no validation here)."""
    instances: list[FleetInstance] = []
    all_services = tuple(project.services)
    for customer_id in sorted(customers):
        customer = customers[customer_id]
        for name, spec in sorted(customer.instances.items()):
            tags = frozenset(customer.tags) | frozenset(spec.tags)
            labels = {**customer.labels, **spec.labels}
            windows_src = spec.windows if spec.windows is not None else customer.windows
            services = tuple(spec.services) if spec.services is not None else all_services
            deployer = spec.deployer or _service_deployer(project, services)
            instances.append(FleetInstance(
                key=f"{customer.id}/{name}",
                customer=customer.id,
                name=name,
                environment=spec.environment,
                services=services,
                tier=customer.tier,
                region=customer.region,
                tags=tags,
                labels=labels,
                windows=tuple(w.spec(customer.timezone) for w in windows_src),
                deployer=deployer,
                target=dict(spec.target),
                url=spec.url,
                facts=instance_facts(customer, name, spec.environment, tags, labels),
            ))
    return Fleet(project=project, customers=dict(customers), instances=tuple(instances))


def _service_deployer(project: Project, services: tuple[str, ...]) -> str:
    for service in services:
        svc = project.services.get(service)
        if svc is not None:
            return svc.deployer
    return "local"
