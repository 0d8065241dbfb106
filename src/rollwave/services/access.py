"""Access: users with roles, API tokens and dashboard sessions.

Roles: ``viewer`` reads; ``deployer`` cuts releases and starts, pauses, resumes, aborts and
rolls back rollouts and changes flags; ``approver`` approves waves; ``admin`` does everything,
including managing users and tokens. Passwords are hashed with argon2id (argon2-cffi); API
tokens and session ids are random secrets of which only a SHA-256 hash is stored, so a leaked
database does not leak credentials. Every change here appends an event (never the secret).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.engine import Connection

from rollwave.errors import (
    AuthError,
    Conflict,
    NotFound,
    PermissionDenied,
    Problem,
    ValidationFailed,
)
from rollwave.services.context import App
from rollwave.storage.events import append_event
from rollwave.storage.tables import api_tokens, sessions, users

ROLES = ("viewer", "deployer", "approver", "admin")

PERMISSIONS: dict[str, frozenset[str]] = {
    "read": frozenset(ROLES),
    "deploy": frozenset({"deployer", "admin"}),
    "approve": frozenset({"approver", "admin"}),
    "flags": frozenset({"deployer", "admin"}),
    "admin": frozenset({"admin"}),
}
"""What each action needs: any one of these roles."""

TOKEN_PREFIX = "rw_"  # noqa: S105 - a public marker, not a secret
SESSION_HOURS = 12
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
_hasher = PasswordHasher()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and through what (``token``, ``session`` or ``cli``)."""

    username: str
    roles: frozenset[str]
    via: str = "token"
    csrf_token: str | None = None

    def can(self, permission: str) -> bool:
        return bool(self.roles & PERMISSIONS[permission])

    def require(self, permission: str) -> None:
        if not self.can(permission):
            need = " or ".join(sorted(PERMISSIONS[permission]))
            raise PermissionDenied(f"{self.username} may not {permission}: needs role {need}")


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    roles: tuple[str, ...]
    created_at: datetime
    disabled: bool
    has_password: bool

    def to_dict(self) -> dict[str, Any]:
        return {"username": self.username, "roles": list(self.roles),
                "created_at": self.created_at.isoformat(), "disabled": self.disabled,
                "has_password": self.has_password}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_roles(roles: Iterable[str]) -> list[str]:
    chosen = sorted(set(roles))
    unknown = [r for r in chosen if r not in ROLES]
    if unknown or not chosen:
        raise ValidationFailed([Problem(
            message=f"unknown role(s): {', '.join(unknown)}" if unknown else "no role given",
            path="--role", hint=f"roles are: {', '.join(ROLES)}")], what="user")
    return chosen


def check_password_strength(password: str) -> None:
    if len(password) < 12:
        raise ValidationFailed([Problem(message="password is shorter than 12 characters",
                                        path="password",
                                        hint="use a passphrase of 12 characters or more")],
                               what="password")


def _user(row: Any) -> UserRecord:
    return UserRecord(id=int(row.id), username=row.username, roles=tuple(row.roles),
                      created_at=row.created_at, disabled=bool(row.disabled),
                      has_password=row.password_hash is not None)


def user_count(app: App) -> int:
    with app.db().read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(users)).scalar() or 0)


def create_user(app: App, username: str, roles: Iterable[str], *,
                password: str | None = None) -> UserRecord:
    """A new user; ``password`` may be omitted for token-only (automation) accounts."""
    if not _USERNAME.match(username):
        raise ValidationFailed([Problem(message=f"'{username}' is not a usable user name",
                                        path="username",
                                        hint="letters, digits and . _ @ - (up to 100)")],
                               what="user")
    chosen = _check_roles(roles)
    if password is not None:
        check_password_strength(password)
    with app.db().begin() as conn:
        if conn.execute(sa.select(users.c.id).where(users.c.username == username)).first():
            raise Conflict(f"user '{username}' already exists",
                           hint="pick another name, or change roles with `rollwave user roles`")
        conn.execute(users.insert().values(
            username=username, password_hash=_hasher.hash(password) if password else None,
            roles=chosen, created_at=datetime.now(UTC), created_by=app.actor, disabled=False))
        append_event(conn, "user.created", f"{app.actor} created user {username} with roles "
                     f"{', '.join(chosen)}", actor=app.actor,
                     data={"user": username, "roles": chosen})
        row = conn.execute(sa.select(users).where(users.c.username == username)).one()
    return _user(row)


def list_users(app: App) -> list[UserRecord]:
    with app.db().read() as conn:
        return [_user(r) for r in conn.execute(sa.select(users).order_by(users.c.username))]


def set_roles(app: App, username: str, roles: Iterable[str]) -> UserRecord:
    chosen = _check_roles(roles)
    with app.db().begin() as conn:
        row = _find(conn, username)
        conn.execute(users.update().where(users.c.id == row.id).values(roles=chosen))
        append_event(conn, "user.roles", f"{app.actor} set roles of {username} to "
                     f"{', '.join(chosen)} (were {', '.join(row.roles)})", actor=app.actor,
                     data={"user": username, "roles": chosen, "before": list(row.roles)})
        return _user(conn.execute(sa.select(users).where(users.c.id == row.id)).one())


def set_disabled(app: App, username: str, disabled: bool) -> None:
    with app.db().begin() as conn:
        row = _find(conn, username)
        conn.execute(users.update().where(users.c.id == row.id).values(disabled=disabled))
        if disabled:
            conn.execute(sessions.delete().where(sessions.c.user_id == row.id))
        append_event(conn, "user.disabled" if disabled else "user.enabled",
                     f"{app.actor} {'disabled' if disabled else 'enabled'} user {username}",
                     actor=app.actor, data={"user": username})


def set_password(app: App, username: str, password: str) -> None:
    check_password_strength(password)
    with app.db().begin() as conn:
        row = _find(conn, username)
        conn.execute(users.update().where(users.c.id == row.id)
                     .values(password_hash=_hasher.hash(password)))
        conn.execute(sessions.delete().where(sessions.c.user_id == row.id))
        append_event(conn, "user.password", f"{app.actor} set the password of {username}",
                     actor=app.actor, data={"user": username})


def _find(conn: Connection, username: str) -> Any:
    row = conn.execute(sa.select(users).where(users.c.username == username)).first()
    if row is None:
        raise NotFound(f"no user '{username}'", hint="list users with `rollwave user list`")
    return row


# --- API tokens --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: ``secret`` is shown once and never stored."""

    secret: str
    prefix: str
    name: str
    username: str
    expires_at: datetime | None


def create_token(app: App, username: str, name: str, *,
                 days: int | None = None) -> IssuedToken:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    prefix = secret[:10]
    expires = datetime.now(UTC) + timedelta(days=days) if days else None
    with app.db().begin() as conn:
        row = _find(conn, username)
        conn.execute(api_tokens.insert().values(
            user_id=row.id, name=name, prefix=prefix, token_hash=_digest(secret),
            created_at=datetime.now(UTC), expires_at=expires, revoked=False))
        append_event(conn, "token.created", f"{app.actor} created API token '{name}' "
                     f"({prefix}…) for {username}", actor=app.actor,
                     data={"user": username, "label": name, "prefix": prefix})
    return IssuedToken(secret=secret, prefix=prefix, name=name, username=username,
                       expires_at=expires)


def revoke_token(app: App, prefix: str) -> None:
    with app.db().begin() as conn:
        hit = conn.execute(api_tokens.update().where(api_tokens.c.prefix == prefix,
                                                     api_tokens.c.revoked.is_(False))
                           .values(revoked=True)).rowcount
        if not hit:
            raise NotFound(f"no active token starting with '{prefix}'",
                           hint="list tokens with `rollwave token list`")
        append_event(conn, "token.revoked", f"{app.actor} revoked API token {prefix}…",
                     actor=app.actor, data={"prefix": prefix})


def list_tokens(app: App) -> list[dict[str, Any]]:
    query = (sa.select(api_tokens.c.name, api_tokens.c.prefix, api_tokens.c.created_at,
                       api_tokens.c.expires_at, api_tokens.c.last_used_at, api_tokens.c.revoked,
                       users.c.username)
             .join(users, users.c.id == api_tokens.c.user_id).order_by(api_tokens.c.id))
    with app.db().read() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def authenticate_token(app: App, secret: str) -> Principal:
    """The principal behind a bearer token; AuthError when unknown, revoked or expired."""
    now = datetime.now(UTC)
    query = (sa.select(api_tokens.c.id, api_tokens.c.expires_at, api_tokens.c.revoked,
                       api_tokens.c.last_used_at, users.c.username, users.c.roles,
                       users.c.disabled)
             .join(users, users.c.id == api_tokens.c.user_id)
             .where(api_tokens.c.token_hash == _digest(secret)))
    with app.db().read() as conn:
        row = conn.execute(query).first()
    if row is None or row.revoked or row.disabled or (row.expires_at and row.expires_at < now):
        raise AuthError("the API token is unknown, revoked or expired")
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=5):
        with app.db().begin() as conn:  # coarse, so reads stay cheap under load
            conn.execute(api_tokens.update().where(api_tokens.c.id == row.id)
                         .values(last_used_at=now))
    return Principal(username=row.username, roles=frozenset(row.roles), via="token")


# --- passwords and sessions --------------------------------------------------------------------


def login(app: App, username: str, password: str) -> tuple[str, Principal]:
    """Check a password and open a session; returns (cookie value, principal)."""
    with app.db().read() as conn:
        row = conn.execute(sa.select(users).where(users.c.username == username)).first()
    failure = AuthError("wrong user name or password", hint=None)
    if row is None or row.password_hash is None or row.disabled:
        _hasher.hash("timing-equaliser")  # the same work whether or not the user exists
        raise failure
    try:
        _hasher.verify(row.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        with app.db().begin() as conn:
            append_event(conn, "auth.failed", f"failed login for {username}", actor=username)
        raise failure from None
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    now = datetime.now(UTC)
    with app.db().begin() as conn:
        conn.execute(sessions.insert().values(
            id_hash=_digest(cookie), user_id=row.id, csrf_token=csrf, created_at=now,
            expires_at=now + timedelta(hours=SESSION_HOURS)))
        conn.execute(sessions.delete().where(sessions.c.expires_at < now))
        append_event(conn, "auth.login", f"{username} logged in", actor=username)
    return cookie, Principal(username=username, roles=frozenset(row.roles), via="session",
                             csrf_token=csrf)


def session_principal(app: App, cookie: str) -> Principal:
    query = (sa.select(sessions.c.csrf_token, sessions.c.expires_at, users.c.username,
                       users.c.roles, users.c.disabled)
             .join(users, users.c.id == sessions.c.user_id)
             .where(sessions.c.id_hash == _digest(cookie)))
    with app.db().read() as conn:
        row = conn.execute(query).first()
    if row is None or row.disabled or row.expires_at < datetime.now(UTC):
        raise AuthError("your session has expired", hint="log in again")
    return Principal(username=row.username, roles=frozenset(row.roles), via="session",
                     csrf_token=row.csrf_token)


def logout(app: App, cookie: str) -> None:
    with app.db().begin() as conn:
        conn.execute(sessions.delete().where(sessions.c.id_hash == _digest(cookie)))


def ensure_first_admin(app: App) -> tuple[str, str] | None:
    """When there are no users at all, create ``admin`` with a random password.

    Returns ``(username, password)`` to show once, or None when users already exist. There is
    never a default password.
    """
    if user_count(app) > 0:
        return None
    password = secrets.token_urlsafe(18)
    create_user(app, "admin", ["admin"], password=password)
    return "admin", password
