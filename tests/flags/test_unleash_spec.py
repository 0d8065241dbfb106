"""The Unleash client specification, run through the Unleash importer and our engine.

The suite lives in ../shared/data/unleash-client-specification (a read-only copy of the
upstream repository; see its PROVENANCE.md). Each case is one parametrized test; cases we
cannot support are xfailed with the reason, never skipped silently.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from bench.verify.scenario import shared_data_dir

from rollwave.flags.engine import compile_snapshot
from rollwave.flags.unleash import import_unleash, unleash_context, variant_result

SPEC = shared_data_dir() / "unleash-client-specification" / "specifications"

# Cases we knowingly cannot reproduce, with the reason (matched on "file::description").
KNOWN_GAPS: dict[str, str] = {}


def _cases() -> list[Any]:
    if not SPEC.is_dir():
        return [pytest.param(None, None, None, marks=pytest.mark.skip(
            reason=f"Unleash specification not found at {SPEC}"))]
    out = []
    for name in json.loads((SPEC / "index.json").read_text()):
        spec = json.loads((SPEC / name).read_text())
        for kind in ("tests", "variantTests"):
            for case in spec.get(kind, []):
                case_id = f"{name}::{case['description']}"
                marks = [pytest.mark.xfail(reason=KNOWN_GAPS[case_id], strict=True)] \
                    if case_id in KNOWN_GAPS else []
                out.append(pytest.param(name, kind, case, id=f"{name[:2]}-{kind[0]}-{case_id}",
                                        marks=marks))
    return out


_compiled: dict[str, Any] = {}


def _snapshot(name: str) -> Any:
    if name not in _compiled:
        spec = json.loads((SPEC / name).read_text())
        flagset, _problems = import_unleash(spec["state"])
        _compiled[name] = (flagset, compile_snapshot(flagset))
    return _compiled[name]


@pytest.mark.parametrize(("name", "kind", "case"), _cases())
def test_unleash_case(name: str, kind: str, case: dict[str, Any]) -> None:
    flagset, snapshot = _snapshot(name)
    context = unleash_context(case.get("context") or {})
    context.setdefault("currentTime", datetime.now(UTC).isoformat())
    details = snapshot.evaluate(case["toggleName"], context, False, "boolean")
    if kind == "tests":
        assert details.value is case["expectedResult"], details
    else:
        flag = flagset.flags.get(case["toggleName"])
        assert variant_result(flag, details) == case["expectedResult"], details
