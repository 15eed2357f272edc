"""The examples in the READMEs run as printed, configured from the environment as their text says: the Python
SDK's in clients/python/README.md, and the SDK, LangGraph and MCP examples of the service README's "From agent
code" section."""

import os
import re
import sys
from pathlib import Path

import pytest

from tests.clients.conftest import LiveServer, SdkTenant

ROOT = Path(__file__).parents[2]
SDK_README = ROOT / "clients" / "python" / "README.md"
SERVICE_README = ROOT / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def agent_code_examples() -> list[str]:
    section = SERVICE_README.read_text().split("## From agent code", 1)[1].split("\n## ", 1)[0]
    return python_blocks(section)


def run_example(example: str, source: Path, live_server: LiveServer, tenant: SdkTenant, monkeypatch) -> None:
    monkeypatch.setenv("MEMSVC_URL", live_server.url)
    monkeypatch.setenv("MEMSVC_API_KEY", tenant.key)
    # As after `pip install` into an active environment: its console scripts (memsvc-mcp) are on PATH.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    exec(compile(example, str(source), "exec"), {"__name__": "__main__"})


def test_the_sdk_readme_example_works_as_printed(live_server: LiveServer, sdk_tenant: SdkTenant, monkeypatch, capsys):
    [example] = python_blocks(SDK_README.read_text())
    run_example(example, SDK_README, live_server, sdk_tenant, monkeypatch)

    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith(" Alice is allergic to peanuts.")
    assert 0 <= float(first.split()[0]) <= 1


def test_the_service_readme_has_one_example_per_integration():
    sdk, langgraph, mcp = agent_code_examples()
    assert "MemoryClient()" in sdk and "MemsvcStore" in langgraph and "memsvc-mcp" in mcp
    for example in (sdk, langgraph, mcp):
        assert len(example.strip().splitlines()) <= 16  # short enough to read at a glance


@pytest.mark.parametrize(
    ("integration", "printed"),
    [
        ("sdk", r"0\.\d\d Alice is allergic to peanuts\."),
        ("langgraph", r"Dinner without peanuts\. \(Alice is allergic to peanuts\.\)"),
        ("mcp", r"Alice is allergic to peanuts\."),
    ],
)
def test_each_agent_code_example_works_as_printed(
    integration, printed, live_server: LiveServer, sdk_tenant: SdkTenant, monkeypatch, capfd
):
    """capfd, not capsys: the MCP client hands the server process its stderr, which must be a real file."""
    example = dict(zip(("sdk", "langgraph", "mcp"), agent_code_examples(), strict=True))[integration]
    run_example(example, SERVICE_README, live_server, sdk_tenant, monkeypatch)
    assert re.fullmatch(printed, capfd.readouterr().out.strip())
