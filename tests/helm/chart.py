"""Rendering helm/memsvc for tests: `helm template` per scenario (cached), the rendered objects by kind and name."""

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "helm" / "memsvc"
SCENARIOS_DIR = CHART_DIR / "ci"
HELM = os.environ.get("MEMSVC_TEST_HELM", str(REPO / ".tools" / "bin" / "helm"))
RELEASE = "memsvc"
NAMESPACE = "memory"

Manifest = dict[str, Any]

# Every scenario: the default values plus one file of helm/memsvc/ci/ (chart-testing's convention).
SCENARIOS = ["default"] + sorted(path.name.removesuffix("-values.yaml") for path in SCENARIOS_DIR.glob("*-values.yaml"))


def scenario_args(scenario: str) -> list[str]:
    return [] if scenario == "default" else ["--values", str(SCENARIOS_DIR / f"{scenario}-values.yaml")]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120)


@dataclass
class Rendered:
    """One `helm template` output: the YAML text and its objects."""

    text: str
    objects: list[Manifest]

    def of_kind(self, kind: str) -> list[Manifest]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def get(self, kind: str, name: str) -> Manifest:
        found = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered; have {self.names()}"
        return found[0]

    def names(self, kind: str | None = None) -> list[str]:
        return [f"{obj['kind']}/{obj['metadata']['name']}" for obj in self.objects if kind in (None, obj["kind"])]

    def workloads(self) -> list[Manifest]:
        """Deployments, StatefulSets and Jobs: everything with a pod template."""
        return [obj for obj in self.objects if obj["kind"] in ("Deployment", "StatefulSet", "Job")]


@dataclass
class Chart:
    _cache: dict[tuple[str, ...], Rendered] = field(default_factory=dict)

    def template(self, *args: str) -> Rendered:
        """`helm template` with extra arguments (values files, --set); fails the test on a render error."""
        if args not in self._cache:
            done = helm("template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE, *args)
            assert done.returncode == 0, done.stderr
            objects = [obj for obj in yaml.safe_load_all(done.stdout) if obj]
            self._cache[args] = Rendered(done.stdout, objects)
        return self._cache[args]

    def scenario(self, name: str, *extra: str) -> Rendered:
        return self.template(*scenario_args(name), *extra)

    def template_error(self, *args: str) -> str:
        """The error of a `helm template` that must fail."""
        done = helm("template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE, *args)
        assert done.returncode != 0, f"rendered, but should have failed: {args}"
        return done.stderr


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Manifest, init: bool = True) -> list[Manifest]:
    spec = pod_spec(workload)
    return [*(spec.get("initContainers", []) if init else []), *spec["containers"]]


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def render_notes(*args: str) -> str:
    """NOTES.txt as `helm install` prints it. helm 3.17's `install --dry-run=client` still calls the cluster, and
    `helm template` leaves NOTES out: render a copy of the chart whose NOTES are a ConfigMap's data instead."""
    with tempfile.TemporaryDirectory() as work:
        copy = Path(work) / "memsvc"
        shutil.copytree(CHART_DIR, copy)
        notes = (copy / "templates" / "NOTES.txt").read_text()
        (copy / "templates" / "NOTES.txt").unlink()
        (copy / "templates" / "_notes.tpl").write_text('{{- define "test.notes" -}}\n' + notes + "\n{{- end }}\n")
        (copy / "templates" / "notes.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
            '  notes: {{ include "test.notes" . | toJson }}\n'
        )
        done = helm(
            "template", RELEASE, str(copy), "--namespace", NAMESPACE, "--show-only", "templates/notes.yaml", *args
        )
        assert done.returncode == 0, done.stderr
        notes_text: str = yaml.safe_load(done.stdout)["data"]["notes"]
        return notes_text
