"""The Kubernetes instructions render as printed: every `helm install` command, `--set` option and values
snippet of the service README's Kubernetes section and of the chart's README, run through `helm template` (no
cluster here: what they would install is rendered, not installed)."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.helm.chart import CHART_DIR, REPO, Chart

SERVICE_SECTION = (REPO / "README.md").read_text().split("\n## Kubernetes\n", 1)[1].split("\n## ", 1)[0]
CHART_README = (CHART_DIR / "README.md").read_text()


def blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", markdown, flags=re.DOTALL)


def helm_installs(markdown: str) -> list[list[str]]:
    """The arguments after `helm install RELEASE CHART` of every such command in the bash blocks."""
    commands = []
    for block in blocks(markdown, "bash"):
        for command in re.sub(r"\\\n\s*", " ", block).splitlines():
            command = command.split(" #", 1)[0].strip()
            if command.startswith("helm install "):
                words = shlex.split(command)
                assert words[3] == "./helm/memsvc", command
                commands.append([w for w in words[4:] if w != "--create-namespace"])
    return commands


def set_options(markdown: str) -> list[list[str]]:
    """The `--set ...` options quoted in the prose."""
    return [shlex.split(option) for option in re.findall(r"`(--set [^`]+)`", markdown)]


def test_the_readmes_give_install_commands_and_snippets() -> None:
    assert len(helm_installs(SERVICE_SECTION)) == 1 and len(helm_installs(CHART_README)) == 2
    assert len(set_options(SERVICE_SECTION)) >= 4
    assert len(blocks(CHART_README, "yaml")) >= 3


@pytest.mark.parametrize(
    "args", helm_installs(SERVICE_SECTION) + set_options(SERVICE_SECTION) + helm_installs(CHART_README)
)
def test_each_command_renders(chart: Chart, args: list[str]) -> None:
    assert chart.template(*args).of_kind("Deployment")


@pytest.mark.parametrize("snippet", blocks(CHART_README, "yaml"))
def test_each_values_snippet_renders(chart: Chart, snippet: str, tmp_path: Path) -> None:
    assert isinstance(yaml.safe_load(snippet), dict)
    values = tmp_path / "values.yaml"
    values.write_text(snippet)
    assert chart.template("--values", str(values)).of_kind("Deployment")
