"""Schemathesis fuzzing from the OpenAPI spec, in-process over ASGI.

Every operation of the spec, with schema-valid (positive) and schema-violating (negative) data.
Authenticated as an admin: no 5xx and every response conforms to the documented schema (status
code, content type, headers, body) under schemathesis's default checks. Unauthenticated: nothing
but ``/healthz`` answers 2xx.

Operations are walked with ``schema.get_all_operations()`` and one Hypothesis test each (the
pytest integration's lazy fixtures do not run under pytest 9). Examples per operation and mode:
``ROLLWAVE_FUZZ_EXAMPLES`` (default 25).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from rollwave.services import releases, rollouts
from tests.api.conftest import ROUTES, Api, build_api

EXAMPLES = int(os.environ.get("ROLLWAVE_FUZZ_EXAMPLES", "25"))
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                         suppress_health_check=list(HealthCheck), database=None,
                         print_blob=False)

#: Endpoints that never end by design (server-sent events) cannot be fuzzed request by request.
SKIP = {"GET /api/v1/flags/stream"}


@pytest.fixture(scope="module")
def fuzz_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    built = build_api(Path(tmp_path_factory.mktemp("fuzz")) / "ws")
    release = releases.create_release(built.ctx, {"web": "1.0"}, name="r1")
    rollouts.start(built.ctx, release.id)
    yield built
    built.client.close()
    built.ctx.close()


@pytest.fixture(scope="module")
def api_schema(fuzz_api: Api) -> Any:
    # Schema-valid data the workspace refuses (an unknown service, a policy that does not
    # exist, a password shorter than 12) is a 400 or a 422 listing every problem: the schema
    # cannot know the workspace's names, so those answers count as accepting well-formed data.
    config = schemathesis.Config.from_dict({"checks": {"positive_data_acceptance": {
        "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "422"]}}})
    return schemathesis.openapi.from_asgi("/api/openapi.json", fuzz_api.app, config=config)


def _runner(operation: Any, mode: GenerationMode, check: Callable[[Any], None],
            counts: dict[str, int]) -> Callable[[], None]:
    @given(case=operation.as_strategy(generation_mode=mode))
    @FUZZ_SETTINGS
    def run(case: Any) -> None:
        counts[operation.label] += 1
        check(case)

    return run  # type: ignore[no-any-return]


def _fuzz(schema: Any, mode: GenerationMode, check: Callable[[Any], None],
          wanted: Callable[[str], bool]) -> tuple[dict[str, int], list[str]]:
    counts: dict[str, int] = {}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in SKIP or not wanted(operation.label):
            continue
        counts[operation.label] = 0
        try:
            _runner(operation, mode, check, counts)()
        except Unsatisfiable:
            pass  # no schema-violating input exists (e.g. only free-text path parameters)
        except (Exception, BaseExceptionGroup) as exc:  # collect every failure, report all
            failures.append(f"{operation.label}: {exc}"[:3000])
    total = sum(counts.values())
    print(f"\nschemathesis {mode.value}: {len(counts)} operations, {total} cases, "
          f"{len(failures)} failing operations")
    for label in failures:
        print("  " + label.splitlines()[0])
    return counts, failures


def _mine(label: str) -> bool:
    method, _, path = label.partition(" ")
    return (method, path) in ROUTES


MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_fuzz_as_admin_no_server_errors_and_conforms(api_schema: Any, fuzz_api: Api,
                                                     mode: GenerationMode) -> None:
    """Releases, plans, rollouts, audit, notes, access: every default check."""
    from schemathesis.specs.openapi.checks import negative_data_rejection

    headers = fuzz_api.auth("ada")

    def check(case: Any) -> None:
        # Starlette takes the last of a repeated scalar query parameter (?limit=1&limit=2),
        # which schemathesis counts as accepting invalid data; bodies are checked in full.
        skip = [negative_data_rejection] if case.method in {"GET", "DELETE"} else []
        case.call_and_validate(headers=headers, excluded_checks=skip)

    counts, failures = _fuzz(api_schema, mode, check, _mine)
    assert len(counts) == len(ROUTES)
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_fuzz_rest_of_the_api_as_admin_has_no_server_errors(api_schema: Any, fuzz_api: Api,
                                                            mode: GenerationMode) -> None:
    """Every other router in the spec (fleet, flags, OFREP, …): no 5xx."""
    from schemathesis.checks import not_a_server_error

    headers = fuzz_api.auth("ada")
    _, failures = _fuzz(api_schema, mode,
                        lambda case: case.call_and_validate(headers=headers,
                                                            checks=[not_a_server_error]),
                        lambda label: not _mine(label))
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_fuzz_unauthenticated_gets_nothing_but_health(api_schema: Any,
                                                      mode: GenerationMode) -> None:
    """The whole spec, without credentials."""
    def check(case: Any) -> None:
        response = case.call()
        assert response.status_code < 500, (case.method, case.path, response.status_code)
        if case.path == "/healthz":
            assert response.status_code == 200
        else:
            assert not 200 <= response.status_code < 300, (case.method, case.path,
                                                            response.status_code)

    counts, failures = _fuzz(api_schema, mode, check, lambda label: True)
    assert len(counts) >= len(ROUTES)
    assert not failures, "\n\n".join(failures)
