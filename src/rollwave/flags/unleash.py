"""Import Unleash feature toggles (the ``/api/client/features`` document) as Rollwave flags.

Each toggle becomes a boolean flag whose variants are ``__off__`` (false), ``__on__`` (true,
enabled without a variant) and one true-valued variant per Unleash variant (its name and
payload kept in the variant's ``metadata``). Strategies become rules in order (a strategy's
constraints and segments are its conditions, its percentage a gate bucketed exactly like
Unleash: murmur3 of ``groupId:value``), variant overrides become rules before the split,
dependencies become prerequisites, segments become Rollwave segments.

Context: Unleash's ``properties`` are flattened into the context next to ``userId``,
``sessionId``, ``remoteAddress``, ``environment``, ``appName``, ``currentTime`` (callers fill
``currentTime`` as Unleash SDKs do; the engine never reads the clock) and ``hostname`` for the
``applicationHostname`` strategy. :func:`unleash_context` builds it; :func:`variant_result`
turns an evaluation into Unleash's ``getVariant`` answer.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from rollwave.errors import Problem
from rollwave.flags.details import EvaluationDetails
from rollwave.flags.errors import FlagDefinitionError
from rollwave.flags.model import Flag, FlagSet, Segment
from rollwave.flags.operators import semver_key, to_datetime
from rollwave.flags.regexguard import compile_safe

OFF = "__off__"
ON = "__on__"
_STRATEGY_STICKY = ["userId", "sessionId"]
_VARIANT_STICKY = ["userId", "sessionId", "remoteAddress"]
_RANDOM_ATTRIBUTE = "__unleash_random__"
_NEVER: dict[str, Any] = {"jsonlogic": False}

_OPS = {
    "STR_CONTAINS": "contains", "STR_STARTS_WITH": "starts_with", "STR_ENDS_WITH": "ends_with",
    "NUM_GT": "gt", "NUM_GTE": "gte", "NUM_LT": "lt", "NUM_LTE": "lte",
    "DATE_AFTER": "after", "DATE_BEFORE": "before",
    "SEMVER_EQ": "semver_eq", "SEMVER_GT": "semver_gt", "SEMVER_LT": "semver_lt",
    "SEMVER_GTE": "semver_gte", "SEMVER_LTE": "semver_lte",
    "REGEX": "matches", "IN_CIDR": "in_cidr",
}
_POSIX = {"alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z",
          "lower": "a-z", "space": r"\s", "word": r"\w", "xdigit": "0-9A-Fa-f",
          "punct": r"!-/:-@\[-`{-~", "blank": r" \t", "cntrl": r"\x00-\x1f\x7f"}
_INLINE_FLAGS = re.compile(r"\(\?([imsx]+)\)")


def translate_regex(pattern: str) -> str:
    """Unleash (RE2/ECMAScript-style) regex → Python: POSIX classes, inline flags anywhere."""
    for name, replacement in _POSIX.items():
        pattern = pattern.replace(f"[:{name}:]", replacement)
    flags = "".join(sorted(set("".join(_INLINE_FLAGS.findall(pattern)))))
    if flags:
        pattern = f"(?{flags})" + _INLINE_FLAGS.sub("", pattern)
    return pattern


def unleash_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """An Unleash context as a flat Rollwave context (``properties`` merged in)."""
    out: dict[str, Any] = {}
    properties = context.get("properties")
    if isinstance(properties, Mapping):
        out.update(properties)
    out.update({k: v for k, v in context.items() if k != "properties" and v is not None})
    if "userId" in out and "targetingKey" not in out:
        out["targetingKey"] = out["userId"]
    return out


def _bucketing(stickiness: str | None, salt: str, defaults: list[str],
               random_if_missing: bool = True) -> dict[str, Any]:
    if not stickiness or stickiness == "default":
        return {"by": defaults, "salt": salt, "hash": "unleash", "random": True}
    if stickiness == "random":
        return {"by": [_RANDOM_ATTRIBUTE], "salt": salt, "hash": "unleash", "random": True}
    return {"by": [stickiness], "salt": salt, "hash": "unleash", "random": random_if_missing}


def _values(constraint: Mapping[str, Any]) -> list[str]:
    values = constraint.get("values")
    if values is None:
        single = constraint.get("value")
        values = [] if single is None else [single]
    return [str(v) for v in values]


def constraint_conditions(constraint: Mapping[str, Any]) -> list[dict[str, Any]]:  # noqa: PLR0911
    """Rollwave conditions (ANDed) for one Unleash constraint."""
    op = str(constraint.get("operator", ""))
    attribute = str(constraint.get("contextName", ""))
    inverted = bool(constraint.get("inverted", False))
    fold = bool(constraint.get("caseInsensitive", False))
    values = _values(constraint)
    base: dict[str, Any] = {"attribute": attribute, "negate": inverted}
    if op in ("IN", "NOT_IN"):
        if not values:  # IN [] is never true, NOT_IN [] always
            always = op == "NOT_IN"
            return [] if always != inverted else [_NEVER]
        return [{**base, "op": "in" if op == "IN" else "not_in", "values": values}]
    if op == "NUM_EQ":
        if inverted:
            return [{"jsonlogic": {"!": {"==": [{"var": attribute}, _num(values)]}}}]
        return [{**base, "op": "gte", "value": values[0] if values else "nan"},
                {**base, "op": "lte", "value": values[0] if values else "nan"}]
    target = _OPS.get(op)
    if target is None or not values:
        return [{"jsonlogic": inverted}]  # unknown operators never match (inverted: always)
    cond = {**base, "op": target, "case_insensitive": fold}
    if target in ("contains", "starts_with", "ends_with"):
        return [{**cond, "values": values}]
    if target == "in_cidr":
        networks = [v for v in values if _is_network(v.strip())]
        return [{**cond, "values": networks}] if networks else [{"jsonlogic": inverted}]
    if target in ("gt", "gte", "lt", "lte") and _num(values) is None:
        return [{"jsonlogic": inverted}]
    if target.startswith("semver_") and semver_key(values[0]) is None:
        return [{"jsonlogic": inverted}]  # an invalid version never matches
    if target in ("after", "before") and to_datetime(values[0]) is None:
        return [{"jsonlogic": inverted}]
    if target == "matches":
        try:
            compile_safe(translate_regex(values[0]), ignore_case=fold)
        except FlagDefinitionError:
            return [{"jsonlogic": inverted}]  # refused regexes never match (reported)
        return [{**cond, "value": translate_regex(values[0])}]
    return [{**cond, "value": values[0]}]


def _num(values: list[str]) -> float | None:
    try:
        return float(values[0]) if values else None
    except ValueError:
        return None


def _split(variants: list[Mapping[str, Any]], names: dict[int, str], salt: str,
           fallback_stickiness: str | None) -> dict[str, Any]:
    stickiness = variants[0].get("stickiness") or fallback_stickiness
    return {"split": [{"variant": names[id(v)], "weight": max(0, int(v.get("weight", 0)))}
                      for v in variants],
            "bucketing": _bucketing(stickiness, salt, _VARIANT_STICKY)}


def _strategy_alternatives(strategy: Mapping[str, Any],
                           problems: list[Problem], name: str) -> list[list[dict[str, Any]]] | None:
    """Condition lists (ORed) for the strategy's own parameters; None = unknown strategy."""
    kind = strategy.get("name")
    params = strategy.get("parameters") or {}
    if kind in ("default", "flexibleRollout", "gradualRolloutUserId",
                "gradualRolloutSessionId", "gradualRolloutRandom"):
        return [[]]
    if kind == "userWithId":
        ids = [s.strip() for s in str(params.get("userIds", "")).split(",") if s.strip()]
        return [[{"attribute": "userId", "op": "in", "values": ids}]] if ids else [[_NEVER]]
    if kind == "remoteAddress":
        entries = [s.strip() for s in str(params.get("IPs", "")).split(",") if s.strip()]
        networks = [e for e in entries if _is_network(e)]
        alternatives: list[list[dict[str, Any]]] = []
        if networks:
            alternatives.append([{"attribute": "remoteAddress", "op": "in_cidr",
                                  "values": networks}])
        if entries:
            alternatives.append([{"attribute": "remoteAddress", "op": "in", "values": entries}])
        return alternatives or [[_NEVER]]
    if kind == "applicationHostname":
        hosts = [s.strip().lower() for s in str(params.get("hostNames", "")).split(",")
                 if s.strip()]
        return [[{"attribute": "hostname", "op": "in", "values": hosts,
                  "case_insensitive": True}]] if hosts else [[_NEVER]]
    problems.append(Problem(message=f"toggle '{name}': unknown strategy '{kind}' never matches",
                            path=f"features.{name}.strategies", code="flag.import",
                            severity="warning"))
    return None


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _gate(strategy: Mapping[str, Any], feature: str) -> dict[str, Any] | None:
    kind = strategy.get("name")
    params = strategy.get("parameters") or {}
    group = str(params.get("groupId") or feature)
    if kind == "flexibleRollout":
        percentage = params.get("rollout", 100)
        return {"percentage": _percent(percentage),
                "bucketing": _bucketing(params.get("stickiness"), group, _STRATEGY_STICKY,
                                        random_if_missing=False)}
    if kind in ("gradualRolloutUserId", "gradualRolloutSessionId"):
        field = "userId" if kind == "gradualRolloutUserId" else "sessionId"
        return {"percentage": _percent(params.get("percentage", 0)),
                "bucketing": {"by": [field], "salt": group, "hash": "unleash"}}
    if kind == "gradualRolloutRandom":
        return {"percentage": _percent(params.get("percentage", 0)),
                "bucketing": {"by": [_RANDOM_ATTRIBUTE], "salt": group, "hash": "unleash",
                              "random": True}}
    return None


def _percent(value: Any) -> float:
    try:
        return min(100.0, max(0.0, float(int(float(str(value))))))
    except ValueError:
        return 0.0


def import_unleash(document: Mapping[str, Any]) -> tuple[FlagSet, list[Problem]]:
    """Convert an Unleash client features document (or delta events) into a FlagSet.

    Returns the flags plus warnings for anything that cannot match (unknown strategies).
    """
    features, raw_segments = _features_of(document)
    problems: list[Problem] = []
    segments: dict[str, Segment] = {}
    for raw in raw_segments:
        key = f"unleash-segment-{raw.get('id')}"
        when = [c for constraint in raw.get("constraints") or []
                for c in constraint_conditions(constraint)]
        segments[key] = Segment.model_validate({"key": key, "when": when or [{"jsonlogic": True}],
                                                "description": str(raw.get("name") or "")})
    variant_names: dict[str, dict[str, list[str]]] = {}
    prepared = []
    for feature in features:
        names, variants = _variants_of(feature)
        variant_names[feature["name"]] = {}
        for v in variants:
            variant_names[feature["name"]].setdefault(v["metadata"]["name"], []).append(v["name"])
        prepared.append((feature, names, variants))
    by_name = {f["name"]: f for f in features}
    flags: dict[str, Flag] = {}
    for feature, names, variants in prepared:
        try:
            flag = _flag(feature, names, variants, variant_names, by_name, problems)
        except ValueError as exc:
            problems.append(Problem(message=f"toggle '{feature['name']}': {exc}",
                                    path=f"features.{feature['name']}", code="flag.import"))
            continue
        flags[flag.key] = flag
    return FlagSet(flags=flags, segments=segments), problems


def _features_of(document: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[Any]]:
    if "events" not in document:
        return list(document.get("features") or []), list(document.get("segments") or [])
    features: dict[str, dict[str, Any]] = {}
    segments: dict[Any, Any] = {}
    for event in document["events"]:
        kind = event.get("type")
        if kind == "hydration":
            features = {f["name"]: f for f in event.get("features") or []}
            segments = {s["id"]: s for s in event.get("segments") or []}
        elif kind == "feature-updated":
            features[event["feature"]["name"]] = event["feature"]
        elif kind == "feature-removed":
            features.pop(event.get("featureName"), None)
        elif kind == "segment-updated":
            segments[event["segment"]["id"]] = event["segment"]
        elif kind == "segment-removed":
            segments.pop(event.get("segmentId"), None)
    return list(features.values()), list(segments.values())


def _variants_of(feature: Mapping[str, Any]) -> tuple[dict[int, str], list[dict[str, Any]]]:
    """Internal variant names for every Unleash variant (feature and strategy level)."""
    names: dict[int, str] = {}
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], str] = {}
    groups = [feature.get("variants") or []] + [s.get("variants") or []
                                                 for s in feature.get("strategies") or []]
    for group in groups:
        for variant in group:
            name = str(variant.get("name"))
            payload = variant.get("payload")
            signature = (name, repr(payload))
            internal = seen.get(signature)
            if internal is None:
                internal = name if name not in (OFF, ON) and all(
                    v["name"] != name for v in out) else f"{name}#{len(out)}"
                seen[signature] = internal
                metadata: dict[str, Any] = {"name": name}
                if payload is not None:
                    metadata["payload"] = payload
                out.append({"name": internal, "value": True, "metadata": metadata})
            names[id(variant)] = internal
    return names, out


def _flag(feature: Mapping[str, Any], names: dict[int, str], variants: list[dict[str, Any]],  # noqa: PLR0912
          variant_names: dict[str, dict[str, list[str]]], by_name: Mapping[str, Any],
          problems: list[Problem]) -> Flag:
    name = str(feature["name"])
    feature_variants = feature.get("variants") or []
    rules: list[dict[str, Any]] = []
    default_serve: dict[str, Any] = (_split(feature_variants, names, name, None)
                                     if feature_variants else {"variant": ON})
    overrides = [(names[id(v)], o) for v in feature_variants for o in v.get("overrides") or []]
    strategies = feature.get("strategies") or []
    for index, strategy in enumerate(strategies):
        alternatives = _strategy_alternatives(strategy, problems, name)
        if alternatives is None:
            continue
        shared = [c for constraint in strategy.get("constraints") or []
                  for c in constraint_conditions(constraint)]
        shared += [{"segment": f"unleash-segment-{sid}"} for sid in strategy.get("segments") or []]
        gate = _gate(strategy, name)
        own = strategy.get("variants") or []
        params = strategy.get("parameters") or {}
        serve = (_split(own, names, str(params.get("groupId") or name), params.get("stickiness"))
                 if own else default_serve)
        for alt_index, alternative in enumerate(alternatives):
            when = shared + alternative
            rule_id = f"strategy-{index}" + (f".{alt_index}" if len(alternatives) > 1 else "")
            if not own:
                for o_index, (variant, override) in enumerate(overrides):
                    rules.append({"id": f"{rule_id}.override-{o_index}", "when": [*when, {
                        "attribute": override.get("contextName"), "op": "in",
                        "values": [str(v) for v in override.get("values") or []]}]
                        if override.get("values") else [*when, _NEVER],
                        "rollout": gate, "serve": {"variant": variant}})
            rules.append({"id": rule_id, "when": when, "rollout": gate, "serve": serve})
    if not strategies:  # enabled for everyone: overrides still pick their variant first
        for o_index, (variant, override) in enumerate(overrides):
            if override.get("values"):
                rules.append({"id": f"override-{o_index}", "when": [{
                    "attribute": override.get("contextName"), "op": "in",
                    "values": [str(v) for v in override["values"]]}],
                    "serve": {"variant": variant}})
    prerequisites = []
    for dependency in feature.get("dependencies") or []:
        parent = str(dependency.get("feature"))
        parent_names = variant_names.get(parent, {})
        parent_feature = by_name.get(parent)
        if parent_feature is None or parent_feature.get("dependencies"):
            wanted = ["__never__"]  # missing parent, or transitive dependency: never satisfied
        elif dependency.get("enabled", True) is False:
            wanted = [OFF]
        elif dependency.get("variants"):
            wanted = [internal for v in dependency["variants"]
                      for internal in (parent_names.get(v) or ([ON] if v == "disabled" else []))]
            wanted = wanted or ["__never__"]
        else:
            wanted = [ON] + [n for group in parent_names.values() for n in group]
        prerequisites.append({"flag": parent, "variants": wanted})
    return Flag.model_validate({
        "key": name, "type": "boolean", "description": str(feature.get("description") or ""),
        "variants": [{"name": OFF, "value": False}, {"name": ON, "value": True}, *variants],
        "off_variant": OFF, "enabled": bool(feature.get("enabled", False)),
        "rules": rules, "fallthrough": default_serve if not strategies else {"variant": OFF},
        "prerequisites": prerequisites, "metadata": {"source": "unleash"},
    })


def variant_result(flag: Flag | None, details: EvaluationDetails) -> dict[str, Any]:
    """Unleash's ``getVariant`` answer for an evaluation of an imported toggle."""
    enabled = details.error_code is None and details.variant not in (None, OFF)
    if not enabled or details.variant == ON or flag is None:
        return {"name": "disabled", "enabled": False, "feature_enabled": enabled}
    variant = next((v for v in flag.variants if v.name == details.variant), None)
    metadata = variant.metadata if variant else {}
    out: dict[str, Any] = {"name": metadata.get("name", details.variant)}
    if "payload" in metadata:
        out["payload"] = metadata["payload"]
    out.update({"enabled": True, "feature_enabled": True})
    return out
