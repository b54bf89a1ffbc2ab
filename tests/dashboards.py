"""The dashboards' queries as the tests check them: every panel's PromQL or SQL from the shipped
Grafana dashboards, the metric names a PromQL expression uses, and Grafana's macros and
variables substituted as Grafana would, so that the SQL panels run on a real Postgres."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
ALERTS_YML = DEPLOY / "prometheus" / "alerts.yml"


DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
PROMQL_WORDS = {
    # aggregations, functions and keywords that may appear in our queries
    *"sum min max avg count topk bottomk sort sort_desc by without on ignoring group_left".split(),
    *"group_right rate irate increase delta histogram_quantile absent abs clamp_min and or".split(),
    *"unless offset bool humanize humanizeDuration humanizePercentage".split(),
}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    datasource: str
    """The data source's type: ``prometheus``, ``grafana-postgresql-datasource``, ``loki``."""
    target: dict[str, Any]

    @property
    def text(self) -> str:
        for field_name in ("expr", "rawSql", "query"):  # PromQL and LogQL, SQL, TraceQL
            if self.target.get(field_name):
                query: str = self.target[field_name]
                return query
        return ""


def panel_queries() -> list[PanelQuery]:
    """Every query of every panel of the shipped dashboards (rows' panels included)."""
    found = []
    for path in DASHBOARDS:
        dashboard = json_load(path)
        for panel in _panels(dashboard["panels"]):
            default = panel.get("datasource") or {}
            for target in panel.get("targets", []):
                source = target.get("datasource") or default
                found.append(PanelQuery(path.stem, panel["title"], source["type"], target))
    return found


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def json_load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def alert_expressions() -> list[tuple[str, str]]:
    """(alert, expression) of every shipped alert rule."""
    rules: dict[str, Any] = yaml.safe_load(ALERTS_YML.read_text())
    return [(rule["alert"], rule["expr"]) for group in rules["groups"] for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {w for w in words if w not in PROMQL_WORDS and not re.fullmatch(r"e\d*", w)}


@dataclass(frozen=True)
class GrafanaTime:
    """What Grafana puts for its global variables, for a dashboard's range and a data source
    scraped every ``scrape_s``: ``$__interval`` is the range over the panel's data points (never
    below the scrape interval), ``$__rate_interval`` the larger of that plus one scrape and four
    scrapes, ``$__range`` the range."""

    range_s: int = 6 * 3600
    scrape_s: int = 15
    max_data_points: int = 1000

    @property
    def interval_s(self) -> int:
        return max(self.scrape_s, round(self.range_s / self.max_data_points))

    @property
    def values(self) -> dict[str, str]:
        return {
            "__rate_interval": f"{max(self.interval_s + self.scrape_s, 4 * self.scrape_s)}s",
            "__interval": f"{self.interval_s}s",
            "__interval_ms": str(self.interval_s * 1000),
            "__range": f"{self.range_s}s",
            "__range_s": str(self.range_s),
            "__range_ms": str(self.range_s * 1000),
        }


def substitute(query: str, variables: Mapping[str, str]) -> str:
    """``query`` with Grafana's ``$name``, ``${name}`` (and ``${name:format}``) and ``[[name]]``
    replaced by ``variables``; a variable it does not know fails the test."""

    def value(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare") or match.group("old")
        if name not in variables:
            raise AssertionError(f"{query!r}: no value for the variable {name!r}")
        return variables[name]

    pattern = r"\$\{(?P<braced>\w+)(?::\w+)?\}|\$(?P<bare>\w+)|\[\[(?P<old>\w+)\]\]"
    return re.sub(pattern, value, query)


_MACRO = re.compile(r"\$__(\w+)\(([^()]*)\)")


def grafana_sql(sql: str, *, start: datetime, end: datetime, variables: Mapping[str, str]) -> str:
    """``sql`` as Grafana's PostgreSQL data source sends it for the range ``start``..``end``:
    its macros expanded (``$__timeFilter``, ``$__timeFrom``, ``$__timeTo``, ``$__time``,
    ``$__timeEpoch``, ``$__timeGroup``, ``$__timeGroupAlias``, ``$__unixEpochFilter``; a
    ``$__timeGroup``'s fill argument dropped), then its variables (``variables``, already
    formatted as Grafana formats them for SQL: quoted, comma-separated)."""

    def iso(moment: datetime) -> str:
        return f"'{moment.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}'"

    def expand(match: re.Match[str]) -> str:
        name, args = match.group(1), [a.strip() for a in match.group(2).split(",") if a.strip()]
        if name == "timeFilter":
            return f"{args[0]} BETWEEN {iso(start)} AND {iso(end)}"
        if name == "timeFrom":
            return iso(start)
        if name == "timeTo":
            return iso(end)
        if name == "time":
            return f'{args[0]} AS "time"'
        if name == "timeEpoch":
            return f'extract(epoch from {args[0]}) AS "time"'
        if name in ("timeGroup", "timeGroupAlias"):
            seconds = _seconds(args[1].strip("'\""))
            group = f"floor(extract(epoch from {args[0]})/{seconds})*{seconds}"
            return group + (' AS "time"' if name == "timeGroupAlias" else "")
        if name == "unixEpochFilter":
            low, high = int(start.timestamp()), int(end.timestamp())
            return f"{args[0]} >= {low} AND {args[0]} <= {high}"
        raise AssertionError(f"a Grafana macro this test does not know: $__{name}")

    return substitute(_MACRO.sub(expand, sql), variables)


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)([smhd])", duration)
    assert match, duration
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def sql_list(values: Sequence[str]) -> str:
    """A multi-value variable as Grafana puts it into SQL: each value quoted, comma-separated."""
    return ",".join("'" + value.replace("'", "''") + "'" for value in values)
