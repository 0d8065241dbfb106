"""flagd interop: imported flags evaluate exactly like flagd; export round-trips."""

from __future__ import annotations

import json
from pathlib import Path

from rollwave.flags.engine import compile_snapshot
from rollwave.flags.flagd import export_flagd, import_flagd
from rollwave.flags.model import Flag, FlagSet

VECTORS = json.loads((Path(__file__).parent / "data" / "flagd_vectors.json").read_text())


def test_imported_flags_match_flagd_reference_answers() -> None:
    flagset, problems = import_flagd(VECTORS["document"])
    assert problems == []
    snapshot = compile_snapshot(flagset)
    wrong = []
    for case in VECTORS["cases"]:
        for key, expected in case["expected"].items():
            got = snapshot.evaluate(key, case["context"], None).variant
            if got != expected:
                wrong.append((key, case["context"], got, expected))
    assert wrong == []
    assert len(VECTORS["cases"]) == 300


def test_native_rules_where_possible_jsonlogic_otherwise() -> None:
    flagset, _ = import_flagd(VECTORS["document"])
    color = flagset.flags["color"]
    assert color.rules[0].when[0].op == "contains"  # $ref inlined and translated
    assert color.rules[1].when[1].jsonlogic is not None  # flagd's lenient sem_ver kept
    assert color.type == "string"


def test_export_then_import_evaluates_the_same() -> None:
    flagset, _ = import_flagd(VECTORS["document"])
    exported, problems = export_flagd(flagset)
    assert [p for p in problems if p.severity == "error"] == []
    again, problems = import_flagd(exported)
    assert problems == []
    one, two = compile_snapshot(flagset), compile_snapshot(again)
    for case in VECTORS["cases"]:
        for key in case["expected"]:
            assert one.evaluate(key, case["context"], None).variant == \
                two.evaluate(key, case["context"], None).variant


def test_export_reports_what_flagd_cannot_express() -> None:
    flag = Flag.model_validate({"key": "f", "enabled": True, "rules": [
        {"when": [{"attribute": "ip", "op": "in_cidr", "value": "10.0.0.0/8"},
                  {"segment": "beta"}], "serve": True}],
        "prerequisites": [{"flag": "g", "variants": ["true"]}],
        "fallthrough": {"split": {"true": 12.5, "false": 87.5}}})
    document, problems = export_flagd(FlagSet(flags={"f": flag}))
    messages = " ".join(p.message for p in problems)
    assert "in_cidr" in messages
    assert "prerequisites" in messages
    assert "bucketing" in messages
    fractional = document["flags"]["f"]["targeting"]["if"][-1]["fractional"]
    assert fractional == [["true", 1250], ["false", 8750]]


def test_bad_flagd_flags_are_reported_not_raised() -> None:
    flagset, problems = import_flagd({"flags": {
        "a": {"state": "ENABLED", "variants": {"x": 1}, "defaultVariant": "nope"},
        "b": {"state": "ENABLED", "variants": {"x": 1}, "defaultVariant": "x",
              "targeting": {"regex_match": [{"var": "a"}, "b"]}},
        "c": {"state": "ENABLED", "variants": {"x": 1}, "defaultVariant": "x",
              "targeting": {"if": [{"$ref": "missing"}, "x"]}},
        "ok": {"state": "DISABLED", "variants": {"on": True, "off": False},
               "defaultVariant": "off"}}})
    assert set(flagset.flags) == {"ok"}
    assert len(problems) == 3
    assert compile_snapshot(flagset).evaluate("ok", {}, None).reason == "DISABLED"
