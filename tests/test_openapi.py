"""The committed openapi.json is the contract clients are built and reviewed against: it must be exactly what the
running app serves, so an API change without its regenerated file fails here."""

import json

from fastapi.testclient import TestClient

from memsvc import openapi

STALE = "openapi.json is out of date: run `memsvc openapi --write` and commit it"


def test_committed_openapi_json_is_what_the_app_serves(client: TestClient) -> None:
    served = client.get("/openapi.json")
    assert served.status_code == 200
    committed = openapi.COMMITTED.read_text()
    assert json.loads(committed) == served.json(), STALE
    # Byte for byte as `--write` renders it, so regenerating an unchanged API leaves no diff.
    assert committed == openapi.render(served.json()), STALE


def test_write_renders_what_the_app_serves_without_a_database(client: TestClient) -> None:
    """`--write` builds the app on default settings and no database; the tests' app runs on its own settings."""
    assert openapi.served_document() == client.get("/openapi.json").json()
