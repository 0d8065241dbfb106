"""``aws-sm:NAME_OR_ARN[#json-key]`` — a secret from AWS Secrets Manager (boto3).

``#key`` picks one field of a secret stored as a JSON object. botocore's errors become
:class:`~rollwave.errors.SecretError` naming the secret, never its value. Options (under
``secrets: aws-sm:`` in rollwave.yaml): ``region``, ``profile``, ``endpoint_url`` (e.g. a local
moto server), ``version_stage``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from rollwave.errors import SecretError

_NOT_FOUND = {"ResourceNotFoundException"}
_DENIED = {"AccessDeniedException", "UnrecognizedClientException",
           "InvalidSignatureException", "ExpiredTokenException"}


class AwsSecretsManagerOptions(BaseModel):
    """Where and how to reach Secrets Manager."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    version_stage: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 10.0


class AwsSecretsManagerResolver:
    """Reads secrets with ``GetSecretValue``; the client is created on first use."""

    def __init__(self, options: AwsSecretsManagerOptions | None = None,
                 client: Any = None) -> None:
        self.options = options or AwsSecretsManagerOptions()
        self._client = client

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError

            opts = self.options
            try:
                session = boto3.session.Session(profile_name=opts.profile,
                                                region_name=opts.region)
                self._client = session.client(
                    "secretsmanager", endpoint_url=opts.endpoint_url,
                    config=Config(connect_timeout=opts.connect_timeout,
                                  read_timeout=opts.read_timeout, retries={"max_attempts": 2}))
            except BotoCoreError as exc:
                raise SecretError(f"cannot set up AWS Secrets Manager: {exc}",
                                  hint="set secrets: aws-sm: region (and profile) in "
                                       "rollwave.yaml, or AWS_REGION") from None
        return self._client

    def resolve(self, body: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        secret_id, _, field = body.partition("#")
        if not secret_id:
            raise SecretError(f"aws-sm:{body} names no secret")
        request: dict[str, str] = {"SecretId": secret_id}
        if self.options.version_stage:
            request["VersionStage"] = self.options.version_stage
        try:
            answer = self.client().get_secret_value(**request)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
            if code in _NOT_FOUND:
                raise SecretError(f"AWS secret '{secret_id}' does not exist",
                                  hint="check the name/ARN and the region") from None
            if code in _DENIED:
                raise SecretError(f"not allowed to read AWS secret '{secret_id}' ({code})",
                                  hint="grant secretsmanager:GetSecretValue to the deploying "
                                       "identity") from None
            raise SecretError(f"AWS Secrets Manager refused '{secret_id}' ({code})") from None
        except BotoCoreError as exc:
            raise SecretError(f"cannot reach AWS Secrets Manager for '{secret_id}': "
                              f"{type(exc).__name__}",
                              hint="check credentials, region and network") from None
        return _pick(answer, secret_id, field)


def _pick(answer: dict[str, Any], secret_id: str, field: str) -> str:
    text = answer.get("SecretString")
    if text is None:
        binary = answer.get("SecretBinary")
        try:
            text = bytes(binary).decode("utf-8") if binary is not None else None
        except (UnicodeDecodeError, TypeError):
            raise SecretError(f"AWS secret '{secret_id}' is binary, not UTF-8 text") from None
    if text is None:
        raise SecretError(f"AWS secret '{secret_id}' has no value")
    if not field:
        return str(text)
    try:
        data = json.loads(text)
    except ValueError:
        raise SecretError(f"AWS secret '{secret_id}' is not a JSON object, so it has no "
                          f"field '{field}'", hint="drop #field to use the whole value") from None
    if not isinstance(data, dict) or field not in data:
        raise SecretError(f"AWS secret '{secret_id}' has no field '{field}'",
                          hint="fields: " + ", ".join(sorted(data)) if isinstance(data, dict)
                          else None)
    value = data[field]
    return value if isinstance(value, str) else json.dumps(value)


def create(options: Any, environment: Any) -> AwsSecretsManagerResolver:
    """Registry factory: ``options`` is a validated :class:`AwsSecretsManagerOptions`."""
    return AwsSecretsManagerResolver(options)
