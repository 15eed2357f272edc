"""The REST contract as a file: `openapi.json` at the repository root is the document the app serves, committed so
that clients and reviewers see every change to the API in a diff. tests/test_openapi.py fails when they differ;
`memsvc openapi --write` brings the file up to date."""

import json
from pathlib import Path
from typing import Any

from memsvc.core.settings import Settings

COMMITTED = Path(__file__).resolve().parents[1] / "openapi.json"


def served_document() -> dict[str, Any]:
    """What GET /openapi.json answers. Building the app opens no connection and loads no model (both happen at
    start-up), so this needs no database; the document does not depend on the settings."""
    from memsvc.app import create_app

    app = create_app(Settings(), "postgresql+psycopg://openapi@localhost/unused")
    return app.openapi()


def render(document: dict[str, Any]) -> str:
    """Stable text: key order as served, two-space indents, a final newline (diff-friendly)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def stale_text(path: Path = COMMITTED) -> str | None:
    """The text `path` should hold, or None when it holds it already."""
    text = render(served_document())
    return None if path.exists() and path.read_text() == text else text


def write(path: Path = COMMITTED) -> bool:
    """Write the served document to `path`; True when the file changed."""
    text = stale_text(path)
    if text is not None:
        path.write_text(text)
    return text is not None
