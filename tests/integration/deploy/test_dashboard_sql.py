"""The dashboards' SQL panels and variables, run as Grafana runs them (macros and variables
substituted) on a migrated Postgres holding users, requests and their ledger, written by the
project's own code: the API accepts the requests, the statement that records outcomes ends them.
Each query runs, returns the columns its panel names (a table's columns, a time series' ``time``
and numbers), and the figures the ledger says."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from libs.accounts import NewUser
from libs.outcomes import Ended, record_outcomes
from tests.dashboards import DASHBOARDS, grafana_sql, json_load, panel_queries, sql_list
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.support import ServerUrls, create_user, load_demo_catalog

POSTGRES = "grafana-postgresql-datasource"
NUMERIC = {"int2", "int4", "int8", "numeric", "float4", "float8"}


@pytest.fixture
async def api(servers: ServerUrls, db_pool: "asyncpg.Pool[Any]") -> AsyncIterator[Api]:
    await load_demo_catalog(db_pool)
    async with serving(settings_for(servers)) as running:
        yield running


async def _submit(api: Api, user: NewUser, text: str) -> uuid.UUID:
    r = await api.client.post("/svc/demo/echo", json={"text": text}, headers=auth(user))
    assert r.status_code == 202, r.text
    return uuid.UUID(r.json()["id"])


def _variables() -> list[dict[str, Any]]:
    found = []
    for path in DASHBOARDS:
        found += json_load(path)["templating"]["list"]
    return found


def _expected_columns(panel: str) -> set[str]:
    """The columns a panel's field overrides name."""
    for path in DASHBOARDS:
        for candidate in json_load(path)["panels"]:
            if candidate["title"] == panel:
                overrides = candidate.get("fieldConfig", {}).get("overrides", [])
                return {
                    o["matcher"]["options"] for o in overrides if o["matcher"]["id"] == "byName"
                }
    raise AssertionError(panel)


async def test_every_sql_panel_and_variable_runs_and_returns_what_its_panel_shows(
    api: Api, db_pool: "asyncpg.Pool[Any]"
) -> None:
    ada = await create_user(db_pool, name="ada", credits=100)
    bob = await create_user(db_pool, name="bob", credits=100)
    await create_user(db_pool, name="idle", credits=100)
    a1, a2, a3 = [await _submit(api, ada, f"ada {n}") for n in range(3)]
    b1 = await _submit(api, bob, "bob")
    async with db_pool.acquire() as conn, conn.transaction():
        await record_outcomes(
            conn,
            ended=[
                Ended(a1, 1, "succeeded", results=["x"]),
                Ended(a2, 1, "succeeded", results=["y"]),
                Ended(a3, 1, "failed", error="boom"),
                Ended(b1, 1, "succeeded", results=["z"]),
            ],
        )
    price = 2  # demo/echo in the test catalog

    variables = [v for v in _variables() if v["type"] == "query"]
    assert variables
    values: dict[str, str] = {}
    async with db_pool.acquire() as conn:
        for variable in variables:
            assert variable["datasource"]["type"] == POSTGRES, variable["name"]
            rows = await conn.fetch(variable["query"])
            assert rows, variable["name"]
            assert len(rows[0]) == 1, f"{variable['name']}: one column, its values"
            # Grafana's "All": every value the query gave.
            values[variable["name"]] = sql_list([str(row[0]) for row in rows])
    assert values["user"] == "'ada','bob','idle'"

    end = datetime.now(UTC) + timedelta(minutes=1)
    start = end - timedelta(hours=6)
    queries = [q for q in panel_queries() if q.datasource == POSTGRES]
    assert len(queries) >= 2
    results: dict[str, list[dict[str, Any]]] = {}
    async with db_pool.acquire() as conn:
        for query in queries:
            sql = grafana_sql(query.text, start=start, end=end, variables=values)
            statement = await conn.prepare(sql)
            columns = {a.name: a.type.name for a in statement.get_attributes()}
            assert _expected_columns(query.panel) <= set(columns), (query.panel, columns)
            if query.target.get("format") == "time_series":
                assert columns.pop("time") in NUMERIC | {"timestamptz", "timestamp"}
                assert set(columns.values()) <= NUMERIC, (query.panel, columns)
            else:
                assert query.target["format"] == "table", query.panel
            results[query.panel] = [dict(row) for row in await statement.fetch()]

    per_user_panel = "Spend per user over the dashboard's range (Postgres)"
    per_user = results[per_user_panel]
    assert per_user == [
        {"user": "ada", "settled": 2 * price, "refunded": price, "requests": 3},
        {"user": "bob", "settled": price, "refunded": None, "requests": 1},
    ]
    (hour,) = results["Credits settled and refunded per hour (Postgres)"]
    assert (hour["settled"], hour["refunded"]) == (3 * price, price)

    (table,) = [q.text for q in queries if q.panel == per_user_panel]
    only_bob = grafana_sql(table, start=start, end=end, variables={"user": sql_list(["bob"])})
    async with db_pool.acquire() as conn:
        assert [r["user"] for r in await conn.fetch(only_bob)] == ["bob"]
        # Outside the range: nothing.
        old = grafana_sql(
            table,
            start=start - timedelta(days=2),
            end=start - timedelta(days=1),
            variables=values,
        )
        assert await conn.fetch(old) == []
