"""The Grafana dashboard and the Prometheus alert rules under k8s/: they
load, every query parses as PromQL, and every metric they read is one the
app really exports on /metrics (docs/monitoring.md)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from tests.conftest import ApiKit
from tests.support import REDIS_GAUGES

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "k8s" / "grafana" / "qms-hall.json"
RULES = ROOT / "k8s" / "prometheus" / "qms-alerts.yaml"
OPERATOR_RULES = ROOT / "k8s" / "prometheus" / "qms-prometheusrule.yaml"

# What Grafana puts in place of its variables before it sends a query: any
# value of the right kind parses the same.
GRAFANA_VALUES = {
    "hall": "daye",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "12h",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")

REPLICA_SAFE_AGGREGATIONS = frozenset({"max", "min"})

# Series Prometheus makes itself for every target; the app cannot export them.
PROMETHEUS_OWN = frozenset({"up"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
SEVERITIES = frozenset({"critical", "warning", "info"})


# ------------------------------------------------------------ reading the files


def load_dashboard() -> dict[str, Any]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(dashboard, dict)
    return dashboard


def load_yaml(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), f"{path.name} is not a YAML mapping"
    return doc


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def data_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in all_panels(dashboard["panels"]) if p["type"] != "row"]


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target, Grafana variables filled in."""
    return [
        (f"panel {panel['id']} {panel['title']!r} target {target['refId']}", target["expr"])
        for panel in data_panels(load_dashboard())
        for target in panel["targets"]
    ]


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def rule_queries() -> list[tuple[str, str]]:
    return [(f"rule {rule['alert']}", rule["expr"]) for rule in rules()]


def hall_variable(dashboard: dict[str, Any]) -> dict[str, Any]:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert "hall" in variables, "the dashboard has no $hall variable"
    hall = variables["hall"]
    assert isinstance(hall, dict)
    return hall


# ------------------------------------------------------------ checking PromQL


def fill_grafana_variables(expr: str) -> str:
    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in GRAFANA_VALUES, f"unknown Grafana variable ${name} in {expr!r}"
        return GRAFANA_VALUES[name]

    return _VARIABLE.sub(value, expr)


def promql_problem(expr: str) -> str | None:
    """Why `expr` is not a PromQL query that yields an instant vector or a
    scalar (what a graph or an alert needs), or None if it is one."""
    try:
        ast = promql_parser.parse(expr)
    except ValueError as exc:
        return str(exc)
    if isinstance(ast, promql_parser.MatrixSelector | promql_parser.SubqueryExpr):
        return "yields a range vector"
    if isinstance(ast, promql_parser.StringLiteral):
        return "yields a string"
    return None


def selectors(expr: str) -> list[tuple[promql_parser.VectorSelector, list[promql_parser.Expr]]]:
    """Each series selector of `expr`, with the nodes that enclose it (outermost
    first); none if `expr` does not parse (the parse tests report that)."""
    found: list[tuple[promql_parser.VectorSelector, list[promql_parser.Expr]]] = []
    stack: list[promql_parser.Expr] = []
    if promql_problem(expr) is not None:
        return found

    def enter(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append((node, list(stack)))
        stack.append(node)

    def leave(node: promql_parser.Expr) -> None:
        stack.pop()

    promql_parser.walk(promql_parser.parse(expr), enter, leave)
    return found


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()
    for selector, _ in selectors(expr):
        # A selector by {__name__=...} alone would dodge the existence check.
        assert selector.name, f"a selector without a metric name in {expr!r}"
        names.add(selector.name)
    return names


def summed_over_replicas(expr: str) -> list[str]:
    """The Redis-derived gauges `expr` does not first take max/min of."""
    wrong: list[str] = []
    for selector, enclosing in selectors(expr):
        if selector.name not in REDIS_GAUGES:
            continue
        aggregations = [n for n in enclosing if isinstance(n, promql_parser.AggregateExpr)]
        if not aggregations or str(aggregations[-1].op) not in REPLICA_SAFE_AGGREGATIONS:
            wrong.append(selector.name)
    return wrong


def exported_metric_names(exposition: str) -> set[str]:
    """Every series name the exposition can produce, from its `# TYPE` lines
    (present even for a labelled metric with no sample yet)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, name, kind = line.split()
        names.add(name)
        if kind == "histogram":
            names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
    return names


# ------------------------------------------------------------ the checker itself


def test_the_checks_reject_broken_queries() -> None:
    assert promql_problem('sum by (hall) (qms_waiting_tickets{hall="a"})') is None
    assert promql_problem("max by (hall) (qms_waiting_tickets") is not None  # unclosed
    assert promql_problem("rate(qms_tickets_issued_total)") is not None  # needs a range
    assert promql_problem("qms_waiting_tickets > > 0") is not None
    assert promql_problem("qms_tickets_issued_total[5m]") is not None  # not graphable
    assert summed_over_replicas("sum by (hall) (qms_waiting_tickets)") == ["qms_waiting_tickets"]
    assert summed_over_replicas("sum(max by (hall) (qms_waiting_tickets))") == []
    assert summed_over_replicas("qms_windows") == ["qms_windows"]
    with pytest.raises(AssertionError, match="unknown Grafana variable"):
        fill_grafana_variables('qms_windows{hall=~"$hal"}')


# ------------------------------------------------------------ the dashboard


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    dashboard = load_dashboard()
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    datasource = variables["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    hall = hall_variable(dashboard)
    assert hall["type"] == "query"
    assert hall["query"]["query"] == hall["definition"] == "label_values(qms_waiting_tickets, hall)"
    assert hall["multi"] is True and hall["includeAll"] is True

    panels = data_panels(dashboard)
    assert len(panels) >= 20
    ids = [p["id"] for p in all_panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        where = f"panel {panel['id']} {panel['title']!r}"
        # A fixed datasource uid would break on import into another Grafana.
        assert panel["datasource"]["uid"] == "${datasource}", where
        assert panel["targets"], f"{where} has no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), f"{where} repeats a refId"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", where
            assert target["expr"].strip(), where
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0, where


def test_every_dashboard_query_parses() -> None:
    problems = [
        f"{where}: {problem}: {expr}"
        for where, expr in dashboard_queries()
        if (problem := promql_problem(fill_grafana_variables(expr))) is not None
    ]
    assert not problems, "\n".join(problems)


def test_every_panel_filters_by_the_hall_variable() -> None:
    """Selecting a hall must narrow every panel whose metric has a hall label;
    qms_event_fanout_lag_seconds, qms_redis_command_seconds and
    qms_build_info have none."""
    unlabelled = {
        "qms_event_fanout_lag_seconds_bucket",
        "qms_redis_command_seconds_bucket",
        "qms_build_info",
    }
    unfiltered = [
        f"{where}: {selector}"
        for where, expr in dashboard_queries()
        for selector, _ in selectors(fill_grafana_variables(expr))
        if selector.name not in unlabelled
        and not any(
            m.name == "hall" and m.value == GRAFANA_VALUES["hall"]
            for m in selector.matchers.matchers
        )
    ]
    assert not unfiltered, "\n".join(unfiltered)


# ------------------------------------------------------------ the alert rules


def test_the_rules_are_well_formed() -> None:
    doc = load_yaml(RULES)
    assert set(doc) == {"groups"}
    groups = doc["groups"]
    group_names = [g["name"] for g in groups]
    assert groups and len(group_names) == len(set(group_names)), group_names
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names)), "alert names must be unique"
    required = {
        "QmsHallNoOpenWindow",
        "QmsOldestWaitOverTarget",
        "QmsScreenOffline",
        "QmsRedisUnreachable",
    }
    assert required <= set(names)
    for rule in rules():
        name = rule["alert"]
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, name
        # `for` is a Prometheus duration ("5m"); parse_duration raises on "5 min".
        assert promql_parser.parse_duration(rule["for"]).total_seconds() > 0, name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name


def test_every_rule_query_parses() -> None:
    problems = [
        f"{where}: {problem}: {expr}"
        for where, expr in rule_queries()
        if (problem := promql_problem(expr)) is not None
    ]
    assert not problems, "\n".join(problems)


def test_redis_derived_gauges_are_never_summed_over_replicas() -> None:
    wrong = [
        f"{where}: {selector}"
        for where, expr in dashboard_queries() + rule_queries()
        for selector in summed_over_replicas(fill_grafana_variables(expr))
    ]
    assert not wrong, "take max by (...) of these first:\n" + "\n".join(wrong)


def test_the_operator_resource_carries_the_same_rules() -> None:
    resource = load_yaml(OPERATOR_RULES)
    assert resource["apiVersion"] == "monitoring.coreos.com/v1"
    assert resource["kind"] == "PrometheusRule"
    assert resource["metadata"]["name"]
    assert resource["spec"] == {"groups": load_yaml(RULES)["groups"]}, (
        f"{OPERATOR_RULES.name} has drifted from {RULES.name}: regenerate it (docs/monitoring.md)"
    )


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not on PATH; the rules are still parsed by promql_parser above",
)
def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------------------------------ against the real app


@pytest.mark.redis
async def test_every_metric_read_is_one_the_app_exports(api: ApiKit) -> None:
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    exported = exported_metric_names(response.text)
    assert "qms_waiting_tickets" in exported  # the exposition was read at all

    read = {
        name: where
        for where, expr in dashboard_queries()
        for name in metric_names(fill_grafana_variables(expr))
    }
    hall_query = hall_variable(load_dashboard())["definition"]
    variable_metric = re.fullmatch(r"label_values\((\w+), hall\)", hall_query)
    assert variable_metric is not None, hall_query
    read[variable_metric.group(1)] = "variable $hall"
    for where, expr in rule_queries():
        read.update(dict.fromkeys(metric_names(expr) - PROMETHEUS_OWN, where))

    missing = sorted(f"{name} (in {where})" for name, where in read.items() if name not in exported)
    assert not missing, "not on /metrics:\n" + "\n".join(missing)
