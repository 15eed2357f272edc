"""helm/memsvc: lint and render every scenario, validate every object against the Kubernetes schemas, and check
what a cluster operator relies on (secrets by reference, GPU only where asked, probes and resources everywhere,
migrations before pods, queue-depth scaling on the right queues)."""

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from memsvc.core.settings import Settings
from memsvc.jobs.dispatch import TASKS
from tests.helm.chart import (
    CHART_DIR,
    NAMESPACE,
    RELEASE,
    SCENARIOS,
    Chart,
    Manifest,
    Rendered,
    containers,
    env_of,
    helm,
    pod_spec,
    render_notes,
    scenario_args,
)
from workers.app import QUEUES

CONNECTION_ENV = ("MEMSVC_DATABASE_URL", "MEMSVC_BROKER_URL", "MEMSVC_ADMIN_KEY", "MEMSVC_CONSOLIDATION_LLM_API_KEY")
# Settings the chart sets itself (from Secrets, or fixed) and that `config` therefore does not take.
CHART_MANAGED_SETTINGS = {
    "database_url",
    "broker_url",
    "admin_key",
    "consolidation_llm_api_key",
    "host",
    "port",
    "data_dir",
}
# Scenarios whose connection settings come from Secrets the user created: the chart renders no Secret at all.
USER_SECRET_SCENARIOS = ["default", "existing-secrets", "gpu", "keda", "gitops", "production"]
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ["1.25.0", "1.37.0"]


def test_the_scenarios_cover_what_the_issue_asks_for() -> None:
    assert {"default", "gpu", "keda", "existing-secrets", "dev-databases", "gitops"} <= set(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_passes(chart: Chart, scenario: str) -> None:
    done = helm("lint", str(CHART_DIR), "--strict", "--namespace", NAMESPACE, *scenario_args(scenario))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def test_every_rendered_object_validates_against_the_kubernetes_schemas(chart: Chart, tmp_path: Path) -> None:
    """`kubernetes-validate --strict` (unknown fields are errors) on every scenario's output, for the oldest and the
    newest Kubernetes the chart supports. It has no schemas for KEDA's custom resources (it warns and skips them):
    test_keda_objects_have_the_shape_of_keda_v2 checks those."""
    files = []
    for scenario in SCENARIOS:
        path = tmp_path / f"{scenario}.yaml"
        path.write_text(chart.scenario(scenario).text)
        files.append(str(path))
    validator = Path(sys.executable).with_name("kubernetes-validate")
    runs = {
        version: subprocess.Popen(
            [str(validator), "--strict", "--quiet", "-k", version, *files],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for version in KUBERNETES_VERSIONS
    }
    for version, run in runs.items():
        output, _ = run.communicate(timeout=300)
        assert run.returncode == 0 and "ERROR" not in output, f"Kubernetes {version}:\n{output}"
        unknown = [line for line in output.splitlines() if line.startswith("WARN")]
        assert unknown, "the KEDA objects were not looked at"
        assert all(
            re.search(r"kind (ScaledObject|TriggerAuthentication) with api version keda\.sh/", w) for w in unknown
        )


# The parts of KEDA 2's CRDs (keda.sh/v1alpha1) that the chart uses, with unknown fields refused, so that a typo
# or a misplaced field fails here rather than at `kubectl apply`.
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
SCALED_OBJECT_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                    },
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"const": "redis"},
                            # KEDA reads every trigger metadata value as a string.
                            "metadata": {
                                **_STRING_MAP,
                                "required": ["address", "listName", "listLength"],
                                "propertyNames": {
                                    "enum": [
                                        "address",
                                        "listName",
                                        "listLength",
                                        "activationListLength",
                                        "databaseIndex",
                                        "enableTLS",
                                    ]
                                },
                            },
                            "authenticationRef": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        },
    },
}
TRIGGER_AUTHENTICATION_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["secretTargetRef"],
            "properties": {
                "secretTargetRef": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["parameter", "name", "key"],
                        "properties": {
                            "parameter": {"enum": ["password", "username", "address"]},
                            "name": {"type": "string", "minLength": 1},
                            "key": {"type": "string", "minLength": 1},
                        },
                    },
                }
            },
        },
    },
}


@pytest.mark.parametrize("scenario", ["keda", "dev-keda-netpol", "production"])
def test_keda_objects_have_the_shape_of_keda_v2(chart: Chart, scenario: str) -> None:
    rendered = chart.scenario(scenario)
    scaled = rendered.of_kind("ScaledObject")
    assert [obj["metadata"]["name"] for obj in scaled] == ["memsvc-worker-embed", "memsvc-worker-consolidate"]
    for obj in scaled:
        jsonschema.validate(obj, SCALED_OBJECT_SCHEMA)
        target = obj["spec"]["scaleTargetRef"]
        assert rendered.get("Deployment", target["name"])  # it scales a Deployment the chart renders
    for obj in rendered.of_kind("TriggerAuthentication"):
        jsonschema.validate(obj, TRIGGER_AUTHENTICATION_SCHEMA)


def test_each_worker_pool_consumes_its_queue_and_keda_watches_that_list(chart: Chart) -> None:
    rendered = chart.scenario("keda")
    assert set(QUEUES) == {queue for _, queue in TASKS.values()} == {"embed", "consolidate"}
    for pool in QUEUES:
        deployment = rendered.get("Deployment", f"memsvc-worker-{pool}")
        command = containers(deployment, init=False)[0]["command"]
        assert command[:2] == ["memsvc", "worker"]
        assert command[command.index("--queues") + 1] == pool
        assert "replicas" not in deployment["spec"]  # KEDA owns the replica count
        (trigger,) = rendered.get("ScaledObject", f"memsvc-worker-{pool}")["spec"]["triggers"]
        # kombu keeps a Celery queue's waiting messages in a Redis list named after the queue.
        assert trigger["metadata"]["listName"] == pool
        assert trigger["metadata"]["address"] == "redis-master.redis.svc.cluster.local:6379"
        assert trigger["authenticationRef"] == {"name": "memsvc-redis"}
    auth = rendered.get("TriggerAuthentication", "memsvc-redis")
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "password", "name": "redis", "key": "redis-password"}]
    embed = rendered.get("ScaledObject", "memsvc-worker-embed")["spec"]
    assert (embed["minReplicaCount"], embed["maxReplicaCount"]) == (1, 20)
    assert rendered.get("ScaledObject", "memsvc-worker-consolidate")["spec"]["minReplicaCount"] == 0


def test_without_keda_the_pools_have_fixed_replicas_and_no_scaled_objects(chart: Chart) -> None:
    rendered = chart.scenario("default")
    assert not rendered.of_kind("ScaledObject") and not rendered.of_kind("TriggerAuthentication")
    assert rendered.get("Deployment", "memsvc-worker-embed")["spec"]["replicas"] == 1


def _gpu_limit(container: Manifest) -> object:
    return container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_gpu_limits_appear_only_on_pools_that_enable_them(chart: Chart, scenario: str) -> None:
    rendered = chart.scenario(scenario)
    gpu_pools = {"gpu": {"embed": 1, "consolidate": 2}, "production": {"embed": 1}}.get(scenario, {})
    for workload in rendered.workloads():
        pool = workload["metadata"]["labels"].get("memsvc.io/pool")
        expected = gpu_pools.get(pool) if pool else None
        spec = pod_spec(workload)
        main = containers(workload, init=False)[0]
        assert _gpu_limit(main) == expected, workload["metadata"]["name"]
        assert all(_gpu_limit(c) is None for c in spec.get("initContainers", []))
        tolerations = spec.get("tolerations", [])
        gpu_toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        assert (gpu_toleration in tolerations) == bool(expected)
        assert (spec.get("nodeSelector", {}).get("nvidia.com/gpu.present") == "true") == bool(expected)
        assert ("memsvc-gpu" in main["image"]) == bool(expected)
        assert (env_of(main).get("MEMSVC_EMBEDDING_DEVICE", {}).get("value") == "cuda") == bool(expected)


def test_gpu_pools_use_the_gpu_image_everywhere_and_roll_without_a_spare_gpu(chart: Chart) -> None:
    rendered = chart.scenario("gpu")
    for pool in QUEUES:
        deployment = rendered.get("Deployment", f"memsvc-worker-{pool}")
        assert {c["image"] for c in containers(deployment)} == {"registry.example.com/memsvc-gpu:0.1.0"}
        assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    api = rendered.get("Deployment", "memsvc-api")
    assert {c["image"] for c in containers(api)} == {"memsvc:0.1.0"}


@pytest.mark.parametrize("scenario", USER_SECRET_SCENARIOS)
def test_connection_settings_come_from_the_users_secrets_and_are_never_inlined(chart: Chart, scenario: str) -> None:
    rendered = chart.scenario(scenario)
    assert rendered.of_kind("Secret") == []
    for workload in rendered.workloads():
        for container in containers(workload):
            for name in CONNECTION_ENV:
                entry = env_of(container).get(name)
                if entry is not None:
                    assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], (container["name"], name)
    for config_map in rendered.of_kind("ConfigMap"):
        assert not set(config_map["data"]) & set(CONNECTION_ENV)


def test_inline_values_are_refused_next_to_an_existing_secret(chart: Chart) -> None:
    error = chart.template_error("--set", "connections.inline.databaseUrl=postgresql://u:p@db/memsvc")
    assert "both existingSecret and inline values are set" in error


def test_existing_secrets_are_referenced_by_name_and_key(chart: Chart) -> None:
    rendered = chart.scenario("existing-secrets")

    def ref(container: Manifest, name: str) -> tuple[str, str] | None:
        entry = env_of(container).get(name)
        return (
            None
            if entry is None
            else (entry["valueFrom"]["secretKeyRef"]["name"], entry["valueFrom"]["secretKeyRef"]["key"])
        )

    api = containers(rendered.get("Deployment", "memsvc-api"), init=False)[0]
    embed = containers(rendered.get("Deployment", "memsvc-worker-embed"), init=False)[0]
    assert ref(api, "MEMSVC_DATABASE_URL") == ref(embed, "MEMSVC_DATABASE_URL") == ("memsvc-pg-app", "uri")
    assert ref(api, "MEMSVC_BROKER_URL") == ref(embed, "MEMSVC_BROKER_URL") == ("memsvc-prod", "redis-url")
    assert ref(api, "MEMSVC_ADMIN_KEY") == ("memsvc-prod", "memsvc-admin-key")
    assert ref(embed, "MEMSVC_ADMIN_KEY") is None  # only the API serves the admin routes
    assert ref(embed, "MEMSVC_CONSOLIDATION_LLM_API_KEY") == ("memsvc-prod", "llm-api-key")
    (migrate,) = containers(rendered.get("Job", "memsvc-migrate"))
    assert ref(migrate, "MEMSVC_DATABASE_URL") == ("memsvc-pg-superuser", "uri")
    assert set(env_of(migrate)) == {"MEMSVC_DATABASE_URL"}  # migrations need nothing else


def test_the_inline_fallback_goes_into_the_charts_own_secret_and_a_hook_copy_for_migrations(chart: Chart) -> None:
    rendered = chart.scenario("inline")
    secret = rendered.get("Secret", "memsvc")
    data = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert data["database-url"] == "postgresql://memsvc:secret@db.example.com:5432/memsvc"
    assert data["broker-url"] == "redis://:secret@redis.example.com:6379/0"
    assert len(data["admin-key"]) == 40  # generated
    assert "annotations" not in secret["metadata"]  # an ordinary release object, not a hook
    # A pre-install hook runs before the release's own objects exist: the Job has its own copy of the URL.
    hook_secret = rendered.get("Secret", "memsvc-migrate")
    assert hook_secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0
    (migrate,) = containers(rendered.get("Job", "memsvc-migrate"))
    assert env_of(migrate)["MEMSVC_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "memsvc-migrate",
        "key": "database-url",
    }
    for text in ("db.example.com", "redis.example.com"):
        assert all(text not in json.dumps(obj) for obj in rendered.objects if obj["kind"] != "Secret")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "connections.existingSecret="], "no database URL"),
        (
            ["--set", "connections.existingSecret=", "--set", "connections.inline.databaseUrl=postgresql://db/m"],
            "no broker URL",
        ),
        (["--set", "keda.enabled=true"], "set keda.redis.address"),
    ],
)
def test_incomplete_settings_fail_with_what_to_set(chart: Chart, args: list[str], message: str) -> None:
    assert message in chart.template_error(*args)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_container_has_requests_and_limits(chart: Chart, scenario: str) -> None:
    rendered = chart.scenario(scenario)
    pods = [pod_spec(w) for w in rendered.workloads()] + [p["spec"] for p in rendered.of_kind("Pod")]
    for spec in pods:
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), (scenario, container["name"], kind)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_long_running_containers_have_startup_liveness_and_readiness_probes(chart: Chart, scenario: str) -> None:
    rendered = chart.scenario(scenario)
    for workload in rendered.of_kind("Deployment") + rendered.of_kind("StatefulSet"):
        for container in containers(workload, init=False):
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert container.get(probe), (workload["metadata"]["name"], probe)
            assert container["startupProbe"] != container["livenessProbe"]


def _budget_s(probe: Manifest) -> int:
    return int(probe.get("periodSeconds", 10)) * int(probe.get("failureThreshold", 3))


def test_startup_probes_leave_time_for_the_model_load(chart: Chart) -> None:
    rendered = chart.scenario("default")
    for name in ("memsvc-api", "memsvc-worker-embed", "memsvc-worker-consolidate"):
        (container,) = containers(rendered.get("Deployment", name), init=False)
        assert _budget_s(container["startupProbe"]) >= 300
        assert _budget_s(container["livenessProbe"]) < _budget_s(container["startupProbe"])
    (api,) = containers(rendered.get("Deployment", "memsvc-api"), init=False)
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    (worker,) = containers(rendered.get("Deployment", "memsvc-worker-embed"), init=False)
    # The probe pings the node name the worker was started with.
    assert "worker@%h" in worker["command"] and "worker@${HOSTNAME}" in worker["livenessProbe"]["exec"]["command"][2]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_pods_run_as_non_root_without_privileges(chart: Chart, scenario: str) -> None:
    rendered = chart.scenario(scenario)
    pods = [pod_spec(w) for w in rendered.workloads()] + [p["spec"] for p in rendered.of_kind("Pod")]
    for spec in pods:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
    for workload in rendered.workloads():
        if workload["metadata"]["labels"]["app.kubernetes.io/component"] in ("api", "worker", "migrations"):
            spec = pod_spec(workload)
            assert spec["securityContext"]["runAsUser"] == 10001
            assert spec["automountServiceAccountToken"] is False
            for container in containers(workload):
                assert container["securityContext"]["readOnlyRootFilesystem"] is True
                if container["command"][0] == "memsvc":  # memsvc writes its caches under /tmp only
                    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_api_and_workers_wait_for_migrations(chart: Chart, scenario: str) -> None:
    rendered = chart.scenario(scenario)
    for deployment in rendered.of_kind("Deployment"):
        if deployment["metadata"]["labels"]["app.kubernetes.io/component"] not in ("api", "worker"):
            continue
        spec = pod_spec(deployment)
        (wait,) = spec["initContainers"]
        (main,) = spec["containers"]
        assert wait["name"] == "wait-for-migrations"
        assert wait["command"][:3] == ["memsvc", "migrate", "--wait"]
        assert wait["image"] == main["image"]  # the schema head it waits for is the image's own
        assert env_of(wait)["MEMSVC_DATABASE_URL"] == env_of(main)["MEMSVC_DATABASE_URL"]


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook(chart: Chart) -> None:
    rendered = chart.scenario("default")
    job = rendered.get("Job", "memsvc-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    (container,) = containers(job)
    assert container["command"] == ["memsvc", "migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    # Before install nothing of the release exists yet: the Job's ServiceAccount is a hook of its own, made first.
    account = rendered.get("ServiceAccount", "memsvc-migrate")
    assert account["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(account["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    assert pod_spec(job)["serviceAccountName"] == "memsvc-migrate"


def test_gitops_mode_renders_an_ordinary_job_named_after_the_image(chart: Chart) -> None:
    rendered = chart.scenario("gitops")
    (job,) = rendered.of_kind("Job")
    annotations = job["metadata"].get("annotations", {})
    assert not [key for key in annotations if key.startswith("helm.sh/")]
    assert annotations["argocd.argoproj.io/sync-wave"] == "-1"
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert re.fullmatch(r"memsvc-migrate-[0-9a-f]{10}", job["metadata"]["name"])
    assert not rendered.of_kind("ServiceAccount") or rendered.names("ServiceAccount") == ["ServiceAccount/memsvc"]
    assert pod_spec(job)["serviceAccountName"] == "memsvc"
    # The same image renders the same Job (re-applying it is a no-op); a new image renders a new one, since a
    # Job's pod template cannot be changed.
    assert (
        chart.scenario("gitops", "--set", "migrations.backoffLimit=4").of_kind("Job")[0]["metadata"]["name"]
        == (job["metadata"]["name"])
    )
    upgraded = chart.scenario("gitops", "--set", "image.tag=0.2.0").of_kind("Job")[0]
    assert upgraded["metadata"]["name"] != job["metadata"]["name"]


def test_dev_databases_make_the_chart_self_contained(chart: Chart) -> None:
    rendered = chart.scenario("dev-databases")
    postgres = rendered.get("StatefulSet", "memsvc-postgres")
    assert "pgvector" in containers(postgres)[0]["image"]
    assert postgres["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "8Gi"
    redis = rendered.get("Deployment", "memsvc-redis")
    for obj in (postgres, redis):
        assert "not-for-production" in json.dumps(obj["metadata"]["annotations"])
    assert {"Service/memsvc-postgres", "Service/memsvc-redis"} <= set(rendered.names("Service"))
    data = {k: base64.b64decode(v).decode() for k, v in rendered.get("Secret", "memsvc")["data"].items()}
    password = data["postgres-password"]
    assert data["database-url"] == f"postgresql://postgres:{password}@memsvc-postgres:5432/memsvc"
    assert data["broker-url"] == f"redis://:{data['redis-password']}@memsvc-redis:6379/0"
    assert len(data["admin-key"]) == 40
    api = containers(rendered.get("Deployment", "memsvc-api"), init=False)[0]
    assert env_of(api)["MEMSVC_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "memsvc", "key": "database-url"}
    # The dev databases are ordinary objects, created with the release: the Job cannot be a pre-install hook.
    (job,) = rendered.of_kind("Job")
    assert "helm.sh/hook" not in job["metadata"].get("annotations", {})
    wait = pod_spec(job)["initContainers"][0]
    assert wait["name"] == "wait-for-postgres" and "pg_isready --host=memsvc-postgres" in wait["command"][2]


def test_dev_databases_are_off_by_default(chart: Chart) -> None:
    rendered = chart.scenario("default")
    assert not rendered.of_kind("StatefulSet")
    assert "Deployment/memsvc-redis" not in rendered.names()


def test_dev_redis_feeds_keda_with_its_password(chart: Chart) -> None:
    rendered = chart.scenario("dev-keda-netpol")
    auth = rendered.get("TriggerAuthentication", "memsvc-redis")
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "password", "name": "memsvc", "key": "redis-password"}]
    for scaled in rendered.of_kind("ScaledObject"):
        assert scaled["spec"]["triggers"][0]["metadata"]["address"] == "memsvc-redis:6379"


def test_network_policies(chart: Chart) -> None:
    assert not chart.scenario("default").of_kind("NetworkPolicy")
    rendered = chart.scenario("dev-keda-netpol")
    api = rendered.get("NetworkPolicy", "memsvc-api")
    assert api["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
    (rule,) = api["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    ingress_ns = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    assert ingress_ns in rule["from"]
    closed = rendered.get("NetworkPolicy", "memsvc-no-ingress")
    assert closed["spec"]["ingress"] == [] and closed["spec"]["policyTypes"] == ["Ingress"]
    assert closed["spec"]["podSelector"]["matchExpressions"][0]["values"] == ["worker", "migrations"]
    memsvc_pods = {
        "podSelector": {
            "matchLabels": {"app.kubernetes.io/name": "memsvc", "app.kubernetes.io/instance": RELEASE},
            "matchExpressions": [
                {"key": "app.kubernetes.io/component", "operator": "In", "values": ["api", "worker", "migrations"]}
            ],
        }
    }
    postgres = rendered.get("NetworkPolicy", "memsvc-postgres")
    assert postgres["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "postgres"
    assert postgres["spec"]["ingress"] == [{"ports": [{"port": 5432, "protocol": "TCP"}], "from": [memsvc_pods]}]
    redis = rendered.get("NetworkPolicy", "memsvc-redis")
    keda = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}
    assert redis["spec"]["ingress"] == [{"ports": [{"port": 6379, "protocol": "TCP"}], "from": [memsvc_pods, keda]}]
    # The selector matches the memsvc pods, and not the databases themselves.
    selector = memsvc_pods["podSelector"]
    for workload in rendered.workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        matches = all(labels.get(k) == v for k, v in selector["matchLabels"].items()) and all(
            labels.get(e["key"]) in e["values"] for e in selector["matchExpressions"]
        )
        assert matches == (labels["app.kubernetes.io/component"] in ("api", "worker", "migrations"))
        assert labels["app.kubernetes.io/component"] in ("api", "worker", "migrations", "postgres", "redis")


def test_api_autoscaling_service_ingress_and_disruption_budgets(chart: Chart) -> None:
    default = chart.scenario("default")
    assert default.get("Deployment", "memsvc-api")["spec"]["replicas"] == 2
    assert not default.of_kind("HorizontalPodAutoscaler") and not default.of_kind("Ingress")
    service = default.get("Service", "memsvc")
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert sorted(default.names("PodDisruptionBudget")) == [
        "PodDisruptionBudget/memsvc-api",
        "PodDisruptionBudget/memsvc-worker-consolidate",
        "PodDisruptionBudget/memsvc-worker-embed",
    ]
    production = chart.scenario("production")
    assert "replicas" not in production.get("Deployment", "memsvc-api")["spec"]
    hpa = production.get("HorizontalPodAutoscaler", "memsvc-api")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "memsvc-api"
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 12)
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu", "memory"]
    ingress = production.get("Ingress", "memsvc")["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == [{"secretName": "memsvc-tls", "hosts": ["memory.example.com"]}]
    backend = ingress["rules"][0]["http"]["paths"][0]["backend"]
    assert backend == {"service": {"name": "memsvc", "port": {"number": 80}}}


def test_component_values_fall_back_to_global_ones(chart: Chart) -> None:
    rendered = chart.scenario("production")
    api = pod_spec(rendered.get("Deployment", "memsvc-api"))
    embed = pod_spec(rendered.get("Deployment", "memsvc-worker-embed"))
    consolidate = pod_spec(rendered.get("Deployment", "memsvc-worker-consolidate"))
    migrate = pod_spec(rendered.of_kind("Job")[0])
    general = {"node.kubernetes.io/pool": "general"}
    assert api["nodeSelector"] == consolidate["nodeSelector"] == migrate["nodeSelector"] == general
    assert embed["nodeSelector"] == {"node.kubernetes.io/pool": "gpu", "nvidia.com/gpu.present": "true"}
    dedicated = {"key": "dedicated", "operator": "Equal", "value": "memsvc", "effect": "NoSchedule"}
    assert api["tolerations"] == consolidate["tolerations"] == [dedicated]
    assert embed["tolerations"] == [dedicated, {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert api["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert "topologySpreadConstraints" not in consolidate
    assert api["priorityClassName"] == consolidate["priorityClassName"] == "memsvc"
    for spec in (api, embed, consolidate, migrate):
        main = spec["containers"][0]
        assert env_of(main)["OMP_NUM_THREADS"] == {"name": "OMP_NUM_THREADS", "value": "2"}
    assert containers(rendered.get("Deployment", "memsvc-api"))[1]["image"] == (
        "registry.example.com/memsvc@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    # Global resources fill in for a component without its own.
    fallback = chart.scenario(
        "default",
        "--set",
        "api.resources=null",
        "--set-json",
        'resources={"requests":{"cpu":"1","memory":"1Gi"},"limits":{"cpu":"1","memory":"1Gi"}}',
    )
    (api_container,) = containers(fallback.get("Deployment", "memsvc-api"), init=False)
    assert api_container["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}


def test_models_volume_is_mounted_read_only_on_api_and_workers(chart: Chart) -> None:
    rendered = chart.scenario("production")
    for name in ("memsvc-api", "memsvc-worker-embed", "memsvc-worker-consolidate"):
        deployment = rendered.get("Deployment", name)
        volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
        assert volumes["models"]["persistentVolumeClaim"] == {"claimName": "memsvc-models", "readOnly": True}
        mounts = {m["name"]: m for m in containers(deployment, init=False)[0]["volumeMounts"]}
        assert mounts["models"] == {"name": "models", "mountPath": "/models", "readOnly": True}


def test_config_becomes_memsvc_environment_variables(chart: Chart) -> None:
    data = chart.scenario("production").get("ConfigMap", "memsvc-config")["data"]
    assert data["MEMSVC_HOST"] == "0.0.0.0" and data["MEMSVC_PORT"] == "8000"
    assert data["MEMSVC_MAX_BODY_BYTES"] == "33554432"  # a large whole number stays a whole number
    assert data["MEMSVC_CONSOLIDATION_AUTO_IDLE_S"] == "1800.5"
    assert data["MEMSVC_CONTEXTUAL_INDEXING"] == "true"
    assert data["MEMSVC_EMBEDDING_MODEL_PATH"] == "/models/bge-small-en-v1.5"
    # memsvc reads them back as the values they were given.
    settings = Settings.model_validate({key.removeprefix("MEMSVC_").lower(): value for key, value in data.items()})
    assert settings.max_body_bytes == 33554432 and settings.consolidation_auto_idle_s == 1800.5
    default = chart.scenario("default").get("ConfigMap", "memsvc-config")["data"]
    assert set(default) == {"MEMSVC_HOST", "MEMSVC_PORT"}  # unset settings keep memsvc's own defaults


def test_config_changes_roll_the_pods(chart: Chart) -> None:
    def checksum(rendered: Rendered) -> str:
        deployment = rendered.get("Deployment", "memsvc-worker-embed")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    before = checksum(chart.scenario("default"))
    assert checksum(chart.scenario("default", "--set", "config.embedding_batch_size=32")) != before


def test_the_schema_knows_every_memsvc_setting_and_its_type() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    config = schema["properties"]["config"]
    assert config["additionalProperties"] is False
    assert set(config["properties"]) == set(Settings.model_fields) - CHART_MANAGED_SETTINGS
    json_types = {int: "integer", float: "number", bool: "boolean", str: "string"}
    for name, prop in config["properties"].items():
        annotation = Settings.model_fields[name].annotation
        base = next((t for t in getattr(annotation, "__args__", (annotation,)) if t is not type(None)), annotation)
        assert prop["type"] == json_types.get(base, "string"), name  # type: ignore[call-overload]


@pytest.mark.parametrize(
    "args",
    [
        ["--set-string", "api.replicas=two"],
        ["--set-string", "workers.embed.gpu.enabled=yes"],
        ["--set", "workers.consolidate.concurrency=0"],
        ["--set", "config.embedding_modle_id=typo"],
        ["--set-string", "config.embedding_batch_size=many"],
        ["--set", "config.embedding_runtime=tensorrt"],
        ["--set", "keda.redis.address=redis://redis:6379/0"],
        ["--set", "image.pullPolicy=Sometimes"],
        ["--set", "apii.replicas=3"],
        ["--set-json", 'workers.embed.queues=["embeddings"]'],
        ["--set", "connections.inline.brokerUrl=amqp://rabbit"],
    ],
)
def test_the_schema_rejects_wrong_values(chart: Chart, args: list[str]) -> None:
    assert "values don't meet the specifications of the schema" in chart.template_error(*args)


def test_helm_test_pod_asks_readyz_through_the_service(chart: Chart) -> None:
    pod = chart.scenario("default").get("Pod", "memsvc-test-readyz")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "http://memsvc:80/readyz" in pod["spec"]["containers"][0]["command"][2]


@pytest.mark.parametrize("scenario", ["default", "dev-databases", "inline", "production"])
def test_notes_render_next_steps(chart: Chart, scenario: str) -> None:
    notes = render_notes(*scenario_args(scenario))
    assert "helm test" in notes and "port-forward svc/memsvc" in notes
    assert ("for trying the chart only" in notes) == (scenario == "dev-databases")
    assert ("connections.inline" in notes) == (scenario == "inline")
    assert ("create secret generic memsvc-connections" in notes) == (scenario in ("default", "production"))
