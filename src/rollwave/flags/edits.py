"""Targeted edits of a flag, as ``rollwave flags set`` makes them (pure functions).

Each edit changes one aspect and leaves the rest alone: switch on/off (top level or in one
environment), target an attribute's values (a rule with id ``target-<attribute>``, replaced on
every call), serve a percentage of a variant in the fallthrough (the rest gets the baseline),
serve one variant in the fallthrough, add variants, describe. The result is validated like any
other definition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rollwave.errors import Problem, ValidationFailed
from rollwave.flags.files import flag_to_data, parse_flag
from rollwave.flags.model import Flag, FlagSet, variant_name


@dataclass
class Edits:
    """What to change; ``None`` or empty means leave it."""

    environment: str | None = None
    enabled: bool | None = None
    type: str | None = None
    description: str | None = None
    owner: str | None = None
    tags: list[str] | None = None
    variants: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, list[str]] = field(default_factory=dict)
    target_variant: str | None = None
    untarget: list[str] = field(default_factory=list)
    percentage: float | None = None
    variant: str | None = None
    serve: str | None = None

    def empty(self) -> bool:
        """Whether nothing would change."""
        return (self.enabled is None and self.type is None and self.description is None
                and self.owner is None and self.tags is None and not self.variants
                and not self.targets and not self.untarget and self.percentage is None
                and self.serve is None)


def parse_assignment(text: str, what: str) -> tuple[str, str]:
    """``customer=acme,globex`` → ``("customer", "acme,globex")``; ValidationFailed if no ``=``."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValidationFailed([Problem(message=f"'{text}' is not NAME=VALUE", path=what,
                                        code="flag.invalid",
                                        hint=f"e.g. {what} customer=acme,globex")],
                               what=what)
    return name.strip(), value.strip()


def parse_value(text: str) -> Any:
    """JSON when it parses (``true``, ``3``, ``{"a":1}``), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _on_variant(data: dict[str, Any], preferred: str | None) -> str:
    names = [str(variant_name(v["name"])) for v in data.get("variants") or []]
    if preferred is not None:
        return str(variant_name(preferred))
    for candidate in ("true", "on"):
        if candidate in names or not names:
            return candidate
    return names[0]


def _off_variant(data: dict[str, Any], on: str) -> str:
    if data.get("off_variant"):
        return str(data["off_variant"])
    names = [str(variant_name(v["name"])) for v in data.get("variants") or []] or ["true",
                                                                                  "false"]
    for candidate in ("false", "off"):
        if candidate in names and candidate != on:
            return candidate
    others = [n for n in names if n != on]
    return others[-1] if others else on


def _add_variants(data: dict[str, Any], new: dict[str, Any], *, fresh: bool) -> None:
    variants = {} if fresh else {v["name"]: v for v in data.get("variants") or []}
    for name, value in new.items():
        variants[name] = {**variants.get(name, {}), "name": name, "value": value}
    data["variants"] = list(variants.values())


def apply_edits(current: Flag | None, key: str, edits: Edits,
                flagset: FlagSet | None = None) -> Flag:
    """``current`` (or a new flag ``key``) with ``edits`` applied; ValidationFailed if invalid."""
    data: dict[str, Any] = flag_to_data(current) if current is not None else {"key": key}
    if edits.type is not None:
        data["type"] = edits.type
    if current is None and data.get("type", "boolean") != "boolean" and not edits.variants:
        raise ValidationFailed([Problem(
            message=f"a new {data['type']} flag needs variants", path="--variant-value",
            code="flag.invalid", hint="e.g. --variant-value blue='\"#00f\"' "
                                      "--variant-value red='\"#f00\"'")], what=f"flag '{key}'")
    data.update({name: value for name, value in (
        ("description", edits.description), ("owner", edits.owner), ("tags", edits.tags))
        if value is not None})
    if edits.variants:
        _add_variants(data, edits.variants, fresh=current is None)
    scope = data
    if edits.environment is not None:
        environments = dict(data.get("environments") or {})
        scope = dict(environments.get(edits.environment) or {})
        environments[edits.environment] = scope
        data["environments"] = environments
    if edits.enabled is not None:
        scope["enabled"] = edits.enabled
    rules_scope = scope if "rules" in scope and scope is not data else data
    if edits.targets or edits.untarget:
        rules = [dict(r) for r in rules_scope.get("rules") or []]
        drop = {f"target-{a}" for a in [*edits.untarget, *edits.targets]}
        rules = [r for r in rules if r.get("id") not in drop]
        serve = _on_variant(data, edits.target_variant)
        new_rules = [{"id": f"target-{attribute}",
                      "when": [{"attribute": attribute, "op": "in", "values": values}],
                      "serve": serve} for attribute, values in edits.targets.items()]
        rules_scope["rules"] = new_rules + rules
    if edits.percentage is not None:
        on = _on_variant(data, edits.variant)
        off = _off_variant(data, on)
        share = round(edits.percentage, 2)
        scope["fallthrough"] = {"variant": on} if share >= 100 else {
            "split": [{"variant": on, "weight": share},
                      {"variant": off, "weight": round(100 - share, 2)}]}
    elif edits.serve is not None:
        scope["fallthrough"] = {"variant": edits.serve}
    return parse_flag(data, key=key, flagset=flagset)
