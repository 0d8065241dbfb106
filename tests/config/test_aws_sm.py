"""The AWS Secrets Manager resolver against moto's server on a free loopback port."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest

from rollwave.adapters.secrets import SecretEnvironment, build_resolvers
from rollwave.adapters.secrets.aws_sm import AwsSecretsManagerOptions, AwsSecretsManagerResolver
from rollwave.config import resolve_secrets
from rollwave.errors import SecretError
from tests.services import free_port, unavailable

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        unavailable("moto[server] is not installed (pip install 'moto[server]')")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> AwsSecretsManagerResolver:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    resolver = AwsSecretsManagerResolver(AwsSecretsManagerOptions(
        region="eu-west-1", endpoint_url=endpoint))
    client = resolver.client()
    for name, kwargs in {
        "prod/acme/db": {"SecretString": json.dumps({"password": "pw-acme", "port": 5432})},
        "plain": {"SecretString": "just-text"},
        "binary": {"SecretBinary": b"bin-text"},
        "not-json": {"SecretString": "{oops"},
    }.items():
        with contextlib.suppress(client.exceptions.ResourceExistsException):
            client.create_secret(Name=name, **kwargs)
    return resolver


def test_reads_plain_json_fields_and_binary(aws: AwsSecretsManagerResolver) -> None:
    assert aws.resolve("plain") == "just-text"
    assert aws.resolve("prod/acme/db#password") == "pw-acme"
    assert aws.resolve("prod/acme/db#port") == "5432"
    assert aws.resolve("binary") == "bin-text"
    arn = aws.client().describe_secret(SecretId="plain")["ARN"]
    assert aws.resolve(arn) == "just-text"


@pytest.mark.parametrize(("body", "message"), [
    ("missing", "AWS secret 'missing' does not exist"),
    ("prod/acme/db#user", "has no field 'user'"),
    ("not-json#x", "is not a JSON object"),
    ("#x", "names no secret"),
])
def test_errors_are_secret_errors(aws: AwsSecretsManagerResolver, body: str,
                                  message: str) -> None:
    with pytest.raises(SecretError, match=message) as caught:
        aws.resolve(body)
    assert "pw-acme" not in caught.value.render()


def test_unreachable_endpoint_is_a_secret_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    resolver = AwsSecretsManagerResolver(AwsSecretsManagerOptions(
        region="eu-west-1", endpoint_url=f"http://127.0.0.1:{free_port()}",
        connect_timeout=0.5, read_timeout=0.5))
    with pytest.raises(SecretError, match="cannot reach AWS Secrets Manager"):
        resolver.resolve("x")


def test_resolve_rendered_config_through_the_registry(aws: AwsSecretsManagerResolver,
                                                      endpoint: str) -> None:
    resolvers = build_resolvers({"aws-sm": {"region": "eu-west-1", "endpoint_url": endpoint}},
                                SecretEnvironment(environ={"API_KEY": "k-123"}))
    config = {"db": {"password": {"$secret": "aws-sm:prod/acme/db#password"}},
              "api_key": {"$secret": "env:API_KEY"}}
    values, secrets = resolve_secrets(config, resolvers)
    assert values == {"db": {"password": "pw-acme"}, "api_key": "k-123"}
    assert secrets == ("pw-acme", "k-123")
