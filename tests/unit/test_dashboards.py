"""The Grafana dashboards ask only for metrics SEGS exports, show every metric the README
documents, and scope the regional panels with the region variable.

A dashboard naming a metric nobody exports draws an empty panel without any error, so these
are checked here, from the files alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segs import metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
DATASOURCES = ROOT / "deploy/grafana/provisioning/datasources"

# The series a metric family exposes, by its type (prometheus-client's exposition).
SERIES_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}
# Words of PromQL that look like metric names but are not.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
REGION_SELECTED = re.compile(r'region=~"\$(?:region|\{region\})"')


def exported() -> dict[str, set[str]]:
    """Each series name SEGS's /metrics pages carry -> its label names.

    The workers' pages (MultiProcessCollector) carry the registry objects of segs.metrics; the
    API's page carries them too, and the database gauges.
    """
    labels: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if isinstance(value, type) or not callable(getattr(value, "describe", None)):
            continue
        for family in value.describe():
            if family.name in metrics.DATABASE_GAUGES:
                names = set(metrics.DATABASE_GAUGES[family.name][1])
            else:
                names = set(value._labelnames)  # the wrapper's label names; no public accessor
            for suffix in SERIES_SUFFIXES[family.type]:
                labels[family.name + suffix] = names
    return labels


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # label matchers, ranges
    # Label lists of aggregations and vector matching.
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if expr[match.end() :].lstrip().startswith("(") or match.group() in KEYWORDS:
            continue  # a function or an aggregation
        names.add(match.group())
    return names


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # inside a collapsed row


def variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    return str(query["query"] if isinstance(query, dict) else query)


# Grafana's label_values(selector, label): the label's values among the selector's series.
LABEL_VALUES = re.compile(r"\s*label_values\((.+),\s*(\w+)\s*\)\s*")


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            text = variable_query(variable)
            label_values = LABEL_VALUES.fullmatch(text)
            yield f"variable {variable['name']!r}", label_values[1] if label_values else text


def load(path: Path) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


def documented() -> set[str]:
    """The metrics the README's Observability section lists (labels in braces dropped)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Observability\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(segs_[a-z0-9_]+)", section))


def test_there_are_dashboards_and_a_documented_metrics_list() -> None:
    assert DASHBOARDS
    assert "segs_readings_accepted_total" in documented()  # the list was found


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_query_names_only_metrics_segs_exports(path: Path) -> None:
    names = exported()
    problems = []
    for where, expr in queries(load(path)):
        selected = metric_names(expr)
        if not selected:
            problems.append(f"{where} names no metric: {expr}")
        for name in sorted(selected - set(names)):
            problems.append(f"{where} names {name}, which SEGS does not export")
    assert not problems, "\n".join(problems)


def test_every_documented_metric_is_exported_and_on_a_panel() -> None:
    names = exported()
    shown = {
        name
        for path in DASHBOARDS
        for where, expr in queries(load(path))
        if where.startswith("panel")
        for name in metric_names(expr)
    }
    suffixes = ("", "_total", "_bucket", "_sum", "_count")
    for metric in sorted(documented()):
        assert any(metric + suffix in names for suffix in suffixes), f"{metric} is not exported"
        assert any(metric + suffix in shown for suffix in suffixes), f"{metric} is on no panel"


def regional() -> set[str]:
    return {name for name, labels in exported().items() if "region" in labels}


def region_scoping(dashboard: dict[str, Any]) -> tuple[int, list[str]]:
    """How many selectors of a metric with a region label filter on $region, and which don't."""
    names = regional()
    scoped, unscoped = 0, []
    for where, expr in queries(dashboard):
        if where.startswith("variable"):
            continue
        for match in re.finditer(r"\b([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?", expr):
            if match.group(1) not in names:
                continue
            if REGION_SELECTED.search(match.group(2) or ""):
                scoped += 1
            else:
                unscoped.append(f"{where}: {match.group(0)}")
    return scoped, unscoped


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_region_variable_scopes_every_regional_query(path: Path) -> None:
    dashboard = load(path)
    scoped, unscoped = region_scoping(dashboard)
    assert not unscoped, "not scoped to $region:\n" + "\n".join(unscoped)
    if not scoped:
        return  # a dashboard with no regional panel needs no region variable
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert "region" in variables, "regional panels filter on $region, which is not defined"
    region = variables["region"]
    assert (region["type"], region["multi"], region["includeAll"]) == ("query", True, True)
    label_values = LABEL_VALUES.fullmatch(variable_query(region))
    assert label_values and label_values[2] == "region"
    assert metric_names(label_values[1]) <= regional()


def test_the_home_dashboard_exists_and_is_scoped_by_region() -> None:
    """Compose opens Grafana on this dashboard; its regional panels follow the variable."""
    compose = (ROOT / "docker-compose.yml").read_text()
    home = re.search(r"GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH:\s*\S*/([^/\s]+\.json)", compose)
    assert home, "docker-compose.yml names no home dashboard"
    path = ROOT / "deploy/grafana/dashboards" / home[1]
    assert path in DASHBOARDS
    scoped, _ = region_scoping(load(path))
    assert scoped


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_panels_use_a_provisioned_datasource(path: Path) -> None:
    provisioned = {
        uid
        for source in DATASOURCES.glob("*.yml")
        for uid in re.findall(r"^\s*uid:\s*(\S+)", source.read_text(), re.MULTILINE)
    }
    dashboard = load(path)
    used = {
        thing["datasource"]["uid"]
        for panel in panels(dashboard)
        for thing in [panel, *panel.get("targets", [])]
        if "datasource" in thing
    } | {variable["datasource"]["uid"] for variable in dashboard["templating"]["list"]}
    assert used <= provisioned
