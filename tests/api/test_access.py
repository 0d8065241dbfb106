"""whoami, sessions with cookies and CSRF, users and tokens, and their audit events."""

from __future__ import annotations

from rollwave.storage.events import list_events
from tests.api.conftest import PASSWORD, Api

V1 = "/api/v1"


def _login(api: Api, user: str, password: str = PASSWORD) -> str:
    response = api.client.post(f"{V1}/session", json={"username": user, "password": password})
    assert response.status_code == 200, response.text
    csrf: str = response.json()["csrf_token"]
    return csrf


def test_whoami_with_a_token(api: Api) -> None:
    body = api.get("dap", f"{V1}/whoami").json()
    assert body == {"username": "dap", "roles": ["approver", "deployer"],
                    "permissions": ["read", "deploy", "approve", "flags"], "via": "token",
                    "csrf_token": None}
    assert api.client.get(f"{V1}/whoami").status_code == 401
    bad = api.client.get(f"{V1}/whoami", headers={"Authorization": "Bearer rw_nope"})
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == "Bearer"


def test_session_cookie_flags_csrf_and_logout(api: Api) -> None:
    response = api.client.post(f"{V1}/session", json={"username": "dora",
                                                      "password": PASSWORD})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert "rollwave_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # plain http, no --secure-cookies
    csrf = response.json()["csrf_token"]
    assert response.json()["via"] == "session"

    assert api.client.get(f"{V1}/whoami").json()["username"] == "dora"  # the cookie works
    body = {"versions": {"web": "1.0"}}
    no_csrf = api.client.post(f"{V1}/releases", json=body)
    assert no_csrf.status_code == 403
    assert "CSRF" in no_csrf.json()["message"]
    wrong = api.client.post(f"{V1}/releases", json=body, headers={"X-CSRF-Token": "x" * 32})
    assert wrong.status_code == 403
    ok = api.client.post(f"{V1}/releases", json=body, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201, ok.text
    assert ok.json()["created_by"] == "dora"

    assert api.client.delete(f"{V1}/session").status_code == 403  # logout needs CSRF too
    out = api.client.delete(f"{V1}/session", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 204
    api.client.cookies.clear()
    api.client.cookies.set("rollwave_session", "gone")
    stale = api.client.get(f"{V1}/whoami")
    assert stale.status_code == 401


def test_secure_cookie_when_configured(api: Api) -> None:
    api.app.state.secure_cookies = True
    response = api.client.post(f"{V1}/session", json={"username": "vic", "password": PASSWORD})
    assert "Secure" in response.headers["set-cookie"]


def test_wrong_password_is_401_and_audited(api: Api) -> None:
    for user in ("dora", "nobody"):
        response = api.client.post(f"{V1}/session", json={"username": user,
                                                          "password": "wrong password"})
        assert response.status_code == 401
        assert response.json()["message"] == "wrong user name or password"
        assert "set-cookie" not in response.headers
    with api.ctx.db().read() as conn:
        failed = list_events(conn, kinds=["auth.failed"])
    assert [e.actor for e in failed] == ["dora"]


def test_users_admin_only_create_roles_disable(api: Api) -> None:
    assert api.get("dora", f"{V1}/users").status_code == 403
    assert {u["username"] for u in api.get("ada", f"{V1}/users").json()} == {
        "ada", "dora", "abe", "vic", "dap"}
    created = api.post("ada", f"{V1}/users", {"username": "eve", "roles": ["viewer"],
                                              "password": "a long enough passphrase"})
    assert created.status_code == 201, created.text
    assert created.json()["has_password"] is True
    assert api.post("ada", f"{V1}/users", {"username": "eve", "roles": ["viewer"]}
                    ).status_code == 409
    weak = api.post("ada", f"{V1}/users", {"username": "weak", "roles": ["viewer"],
                                           "password": "short"})
    assert weak.status_code == 422
    assert weak.json()["problems"][0]["path"] == "password"
    assert api.post("ada", f"{V1}/users", {"username": "x", "roles": ["root"]}
                    ).status_code == 422
    assert api.post("dora", f"{V1}/users", {"username": "y", "roles": ["admin"]}
                    ).status_code == 403

    roles = api.client.put(f"{V1}/users/eve/roles", json={"roles": ["deployer", "approver"]},
                           headers=api.auth("ada"))
    assert roles.json()["roles"] == ["approver", "deployer"]
    own = api.client.put(f"{V1}/users/ada/roles", json={"roles": ["viewer"]},
                         headers=api.auth("ada"))
    assert own.status_code == 409
    assert api.client.put(f"{V1}/users/nobody/roles", json={"roles": ["viewer"]},
                          headers=api.auth("ada")).status_code == 404

    assert api.get("vic", f"{V1}/whoami").status_code == 200
    disabled = api.post("ada", f"{V1}/users/vic/disable")
    assert disabled.status_code == 200
    assert disabled.json()["disabled"] is True
    assert api.get("vic", f"{V1}/whoami").status_code == 401  # their token stops working
    assert api.post("ada", f"{V1}/users/ada/disable").status_code == 409
    assert api.post("ada", f"{V1}/users/vic/enable").json()["disabled"] is False
    assert api.get("vic", f"{V1}/whoami").status_code == 200
    with api.ctx.db().read() as conn:
        events = list_events(conn, kind_prefix="user.")
    assert [(e.kind, e.data["user"]) for e in events if e.actor == "ada"] == [
        ("user.created", "eve"), ("user.roles", "eve"), ("user.disabled", "vic"),
        ("user.enabled", "vic")]


def test_tokens_self_service_and_admin(api: Api) -> None:
    issued = api.post("vic", f"{V1}/tokens", {"name": "laptop", "days": 7})
    assert issued.status_code == 201, issued.text
    secret = issued.json()["secret"]
    assert secret.startswith("rw_")
    assert issued.json()["expires_at"] is not None
    headers = {"Authorization": f"Bearer {secret}"}
    assert api.client.get(f"{V1}/whoami", headers=headers).json()["username"] == "vic"

    mine = api.get("vic", f"{V1}/tokens").json()
    assert {t["username"] for t in mine} == {"vic"}
    assert "secret" not in mine[0]
    assert {t["username"] for t in api.get("ada", f"{V1}/tokens").json()} == set(
        api.tokens)
    assert {t["username"] for t in api.get("ada", f"{V1}/tokens",
                                           params={"user": "abe"}).json()} == {"abe"}
    assert api.post("vic", f"{V1}/tokens", {"name": "x", "username": "ada"}).status_code == 403
    for_ci = api.post("ada", f"{V1}/tokens", {"name": "ci", "username": "dora"})
    assert for_ci.status_code == 201
    assert for_ci.json()["username"] == "dora"
    assert api.post("ada", f"{V1}/tokens", {"name": "x", "username": "nobody"}
                    ).status_code == 404

    prefix = issued.json()["prefix"]
    admin_prefix = next(t["prefix"] for t in api.get("ada", f"{V1}/tokens").json()
                        if t["username"] == "ada")
    assert api.client.delete(f"{V1}/tokens/{admin_prefix}",
                             headers=api.auth("vic")).status_code == 404  # not theirs
    assert api.client.delete(f"{V1}/tokens/{prefix}", headers=api.auth("vic")).status_code == 204
    assert api.client.get(f"{V1}/whoami", headers=headers).status_code == 401
    assert api.client.delete(f"{V1}/tokens/{prefix}", headers=api.auth("vic")).status_code == 404
    with api.ctx.db().read() as conn:
        events = list_events(conn, kind_prefix="token.")
    assert [(e.kind, e.actor) for e in events][-3:] == [
        ("token.created", "vic"), ("token.created", "ada"), ("token.revoked", "vic")]
    assert all(secret not in e.message for e in events)
