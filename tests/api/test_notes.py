"""Notes per customer through the API."""

from __future__ import annotations

from rollwave.storage.events import list_events
from tests.api.conftest import Api

V1 = "/api/v1"


def test_notes_create_list_page_and_permissions(api: Api) -> None:
    first = api.post("dora", f"{V1}/customers/c00/notes", {"body": "uses legacy export"})
    assert first.status_code == 201, first.text
    assert first.json()["author"] == "dora"
    assert first.json()["instance"] is None
    on_prod = api.post("abe", f"{V1}/customers/c00/notes",
                       {"body": "call Jane before deploys", "instance": "prod"})
    assert on_prod.status_code == 201
    assert on_prod.json()["instance"] == "c00/prod"
    assert api.post("vic", f"{V1}/customers/c00/notes", {"body": "x"}).status_code == 403
    assert api.client.post(f"{V1}/customers/c00/notes", json={"body": "x"}).status_code == 401

    listed = api.get("vic", f"{V1}/customers/c00/notes").json()
    assert [n["body"] for n in listed] == ["call Jane before deploys", "uses legacy export"]
    page = api.get("vic", f"{V1}/customers/c00/notes",
                   params={"limit": 1, "before": listed[0]["id"]}).json()
    assert [n["body"] for n in page] == ["uses legacy export"]
    only_prod = api.get("vic", f"{V1}/customers/c00/notes", params={"instance": "prod"}).json()
    assert [n["id"] for n in only_prod] == [on_prod.json()["id"]]
    assert api.get("vic", f"{V1}/customers/c01/notes").json() == []

    missing = api.get("vic", f"{V1}/customers/nope/notes")
    assert missing.status_code == 404
    assert api.post("dora", f"{V1}/customers/nope/notes", {"body": "x"}).status_code == 404
    bad_instance = api.post("dora", f"{V1}/customers/c00/notes",
                            {"body": "x", "instance": "c01/prod"})
    assert bad_instance.status_code == 422
    assert api.post("dora", f"{V1}/customers/c00/notes", {"body": "  "}).status_code == 422
    assert api.post("dora", f"{V1}/customers/c00/notes", {}).status_code == 422

    with api.ctx.db().read() as conn:
        events = list_events(conn, kinds=["note.created"])
    assert [(e.actor, e.instance) for e in events] == [("dora", None), ("abe", "c00/prod")]


def test_a_customer_added_while_serving_is_seen(api: Api) -> None:
    import yaml

    from rollwave.workspace.scaffold import CustomerSeed, customer_document

    assert api.get("vic", f"{V1}/customers/newco/notes").status_code == 404

    doc = customer_document(CustomerSeed("newco", "New Co"))
    (api.ctx.root / "customers" / "newco.yaml").write_text(yaml.safe_dump(doc))
    assert api.get("vic", f"{V1}/customers/newco/notes").status_code == 200
