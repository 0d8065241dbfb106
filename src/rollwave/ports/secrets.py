"""The SecretResolver port: turn a secret reference into its value, at deploy time only.

A reference is ``kind:body``: ``env:DB_PASSWORD``, ``file:secrets/db.txt``,
``aws-sm:prod/db#password``. Each kind has one resolver (``rollwave/adapters/secrets/``, a
registry keyed by kind); :class:`SecretResolvers` holds the resolvers of a workspace by kind.

Rules every resolver follows: it raises :class:`~rollwave.errors.SecretError` (never a vendor
exception) whose message names the reference and never the value; it does no caching across
deploys (rotation must take effect); it is only called from the deploy path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from rollwave.errors import SecretError


class SecretResolver(Protocol):
    """Resolves the references of one kind."""

    def resolve(self, body: str) -> str:
        """The secret value for ``body`` (the reference without ``kind:``)."""
        ...


def split_reference(reference: str) -> tuple[str, str]:
    """``"aws-sm:prod/db#pw"`` → ``("aws-sm", "prod/db#pw")``; SecretError when malformed."""
    kind, sep, body = reference.partition(":")
    if not sep or not kind or not body:
        raise SecretError(f"'{reference}' is not a secret reference (kind:reference)")
    return kind, body


class SecretResolvers(Mapping[str, SecretResolver]):
    """The resolvers of a workspace, by kind; :meth:`resolve` takes a whole reference."""

    def __init__(self, resolvers: Mapping[str, SecretResolver]) -> None:
        self._resolvers = dict(resolvers)

    def __getitem__(self, kind: str) -> SecretResolver:
        return self._resolvers[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._resolvers)

    def __len__(self) -> int:
        return len(self._resolvers)

    def resolve(self, reference: str) -> str:
        """The value of ``kind:body`` (e.g. for a metric source's API key)."""
        kind, body = split_reference(reference)
        resolver = self._resolvers.get(kind)
        if resolver is None:
            raise SecretError(f"no secret resolver of kind '{kind}' (in '{reference}')",
                              hint="known kinds: " + ", ".join(sorted(self._resolvers)))
        return resolver.resolve(body)
