"""OpenFeature: our provider in-process, and OFREP conformance with the OFREP provider."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from rollwave.flags.devserver import FlagServer
from rollwave.flags.model import Flag, FlagSet
from rollwave.flags.snapshots import snapshot_document
from rollwave.flags.store import InMemoryFlagStore
from rollwave.sdk.client import RollwaveClient
from rollwave.sdk.openfeature import RollwaveProvider

FLAGS = [
    {"key": "bool", "rules": [{"id": "acme", "when": [
        {"attribute": "customer", "op": "equals", "value": "acme"}], "serve": True}],
     "fallthrough": {"split": {"true": 20, "false": 80}}},
    {"key": "str", "type": "string", "variants": {"blue": "#00f", "red": "#f00"},
     "fallthrough": "red"},
    {"key": "int", "type": "number", "variants": {"few": 3, "many": 300}, "fallthrough": "many"},
    {"key": "float", "type": "number", "variants": {"half": 0.5}},
    {"key": "obj", "type": "json", "variants": {"cfg": {"limit": 10, "tags": ["a"]}}},
]
FLAGSET = FlagSet(flags={f["key"]: Flag.model_validate({**f, "enabled": True}) for f in FLAGS})
ACME = EvaluationContext("user-1", {"customer": "acme"})


def _check_client(client: Any) -> None:
    details = client.get_boolean_details("bool", False, ACME)
    assert (details.value, details.reason, details.variant) == (True, Reason.TARGETING_MATCH,
                                                                "true")
    assert details.flag_metadata["ruleId"] == "acme"
    split = client.get_boolean_details("bool", True, EvaluationContext("user-9", {}))
    assert split.reason == Reason.SPLIT
    assert split.error_code is None
    assert client.get_string_value("str", "x", ACME) == "#f00"
    assert client.get_integer_value("int", 0, ACME) == 300
    assert client.get_float_value("float", 0.0, ACME) == 0.5
    assert client.get_object_value("obj", {}, ACME) == {"limit": 10, "tags": ["a"]}
    missing = client.get_boolean_details("nope", True, ACME)
    assert (missing.value, missing.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
    no_key = client.get_boolean_details("bool", True, EvaluationContext(None, {"customer": "x"}))
    assert (no_key.value, no_key.error_code) == (True, ErrorCode.TARGETING_KEY_MISSING)
    mismatch = client.get_boolean_details("str", False, ACME)
    assert (mismatch.value, mismatch.error_code) == (False, ErrorCode.TYPE_MISMATCH)


def test_rollwave_provider_in_process() -> None:
    sdk = RollwaveClient(bootstrap=snapshot_document(FLAGSET, None, 1))
    api.set_provider(RollwaveProvider(sdk), domain="in-process")
    _check_client(api.get_client(domain="in-process"))


@pytest.fixture(scope="module")
def server() -> Iterator[FlagServer]:
    with FlagServer(InMemoryFlagStore(FLAGSET)) as running:
        yield running


def test_ofrep_conformance_with_the_ofrep_provider(server: FlagServer) -> None:
    ofrep = pytest.importorskip("openfeature.contrib.provider.ofrep")
    api.set_provider(ofrep.OFREPProvider(base_url=server.url), domain="ofrep")
    _check_client(api.get_client(domain="ofrep"))


def test_ofrep_bulk_etag_over_http(server: FlagServer) -> None:
    url = f"{server.url}/ofrep/v1/evaluate/flags"
    body = {"context": {"targetingKey": "user-1", "customer": "acme"}}
    first = httpx.post(url, json=body)
    assert first.status_code == 200
    assert len(first.json()["flags"]) == len(FLAGS)
    again = httpx.post(url, json=body, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
