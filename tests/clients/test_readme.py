"""The example in clients/python/README.md runs as printed, configured from the environment."""

import re
from pathlib import Path

from tests.clients.conftest import LiveServer, SdkTenant

README = Path(__file__).parents[2] / "clients" / "python" / "README.md"


def test_the_readme_example_works_as_printed(live_server: LiveServer, sdk_tenant: SdkTenant, monkeypatch, capsys):
    [example] = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    monkeypatch.setenv("MEMSVC_URL", live_server.url)
    monkeypatch.setenv("MEMSVC_API_KEY", sdk_tenant.key)

    exec(compile(example, str(README), "exec"), {})

    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith(" Alice is allergic to peanuts.")
    assert 0 <= float(first.split()[0]) <= 1
