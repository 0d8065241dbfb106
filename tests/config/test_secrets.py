"""Secret references: resolution at deploy time, errors without values, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollwave.adapters.secrets import SecretEnvironment, build_resolvers, registry
from rollwave.adapters.secrets.env import EnvSecretResolver
from rollwave.adapters.secrets.file import FileSecretResolver
from rollwave.config import redact, resolve_secrets, secret_references
from rollwave.errors import ConfigError, SecretError
from rollwave.ports.secrets import SecretResolvers, split_reference

CONFIG = {
    "db": {"password": {"$secret": "env:DB_PW"}, "user": "app"},
    "tokens": [{"$secret": "file:tok.txt"}, "plain"],
    "again": {"$secret": "env:DB_PW"},
    "not_a_secret": {"$secret": "env:X", "other": 1},
}


def resolvers(tmp_path: Path, environ: dict[str, str]) -> SecretResolvers:
    return build_resolvers(environment=SecretEnvironment(base_dir=tmp_path, environ=environ))


def test_resolves_every_reference_once(tmp_path: Path) -> None:
    (tmp_path / "tok.txt").write_text("s3cr3t-token\n")
    calls: list[str] = []

    class Counting(EnvSecretResolver):
        def resolve(self, body: str) -> str:
            calls.append(body)
            return super().resolve(body)

    found = dict(resolvers(tmp_path, {}))
    found["env"] = Counting(environ={"DB_PW": "hunter2-long"})
    values, secrets = resolve_secrets(CONFIG, found)
    assert values == {"db": {"password": "hunter2-long", "user": "app"},
                      "tokens": ["s3cr3t-token", "plain"], "again": "hunter2-long",
                      "not_a_secret": {"$secret": "env:X", "other": 1}}
    assert secrets == ("hunter2-long", "s3cr3t-token")
    assert calls == ["DB_PW"]
    assert CONFIG["db"]["password"] == {"$secret": "env:DB_PW"}  # the input is untouched


def test_all_failures_in_one_error_without_values(tmp_path: Path) -> None:
    config = {"a": {"$secret": "env:MISSING"}, "b": {"$secret": "vault:x"},
              "c": {"$secret": "file:nope.txt"}, "d": {"$secret": "env:SET"}}
    with pytest.raises(SecretError) as caught:
        resolve_secrets(config, resolvers(tmp_path, {"SET": "the-value"}))
    message = caught.value.message
    assert message.startswith("cannot resolve 3 secrets: ")
    assert "a (env:MISSING): environment variable MISSING is not set" in message
    assert "b (vault:x): no resolver for kind 'vault'" in message
    assert "c (file:nope.txt): cannot read secret file:nope.txt" in message
    assert "the-value" not in caught.value.render()


def test_references_and_redaction() -> None:
    assert list(secret_references(CONFIG)) == [
        (("db", "password"), "env:DB_PW"), (("tokens", 0), "file:tok.txt"),
        (("again",), "env:DB_PW")]
    assert redact("pw=hunter2 hunter2x", ("hunter2", "hunter2x")) == "pw=******** ********"


def test_file_resolver(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "pw").write_bytes(b"line1\nline2\r\n")
    (tmp_path / "s" / "bin").write_bytes(b"\xff\xfe")
    resolver = FileSecretResolver(tmp_path)
    assert resolver.resolve("s/pw") == "line1\nline2"
    assert resolver.resolve(str(tmp_path / "s" / "pw")) == "line1\nline2"
    with pytest.raises(SecretError, match="not UTF-8"):
        resolver.resolve("s/bin")
    built = build_resolvers({"file": {"base_dir": "s"}},
                            SecretEnvironment(base_dir=tmp_path))
    assert built.resolve("file:pw") == "line1\nline2"


def test_env_prefix_and_whole_references() -> None:
    built = build_resolvers({"env": {"prefix": "APP_"}},
                            SecretEnvironment(environ={"APP_PW": "v"}))
    assert built.resolve("env:PW") == "v"
    with pytest.raises(SecretError, match="no secret resolver of kind 'nope'"):
        built.resolve("nope:x")
    with pytest.raises(SecretError, match="is not a secret reference"):
        built.resolve("no-colon")


def test_settings_errors() -> None:
    with pytest.raises(ConfigError, match="unknown secret kind 'vault'"):
        build_resolvers({"vault": {}})
    with pytest.raises(ConfigError, match="aws-sm has bad options: regionn"):
        build_resolvers({"aws-sm": {"regionn": "x"}})


def test_registry_and_split() -> None:
    assert registry.kinds() == ["aws-sm", "env", "file"]
    assert split_reference("aws-sm:arn:aws:secretsmanager:eu-west-1:1:secret:x#k") == (
        "aws-sm", "arn:aws:secretsmanager:eu-west-1:1:secret:x#k")
