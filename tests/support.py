"""Helpers shared by the tests: servers, users and catalog fixtures' building blocks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from libs import accounts
from libs.accounts import NewUser
from libs.catalog import CatalogSpec, apply_catalog


@dataclass(frozen=True)
class ServerUrls:
    database_url: str
    redis_url: str


DEMO_CATALOG = CatalogSpec.model_validate(
    {
        "handlers": [{"id": "echo.text"}, {"id": "echo.delay"}],
        "offers": [
            {
                "service": "demo",
                "action": "echo",
                "price": 2,
                "prompt_template": "{text}",
                "handler": "echo.text",
            },
            {
                "service": "demo",
                "action": "ask",
                "price": 1,
                "prompt_template": "{prompt}",
                "handler": "echo.text",
            },
            {
                "service": "demo",
                "action": "greet",
                "price": 3,
                "prompt_template": "Hello {name}, you are {age}.",
                "handler": "echo.text",
            },
            {
                "service": "demo",
                "action": "sleep",
                "price": 5,
                "prompt_template": "{text}",
                "handler": "echo.delay",
                "params": {"delay_ms": 300},
            },
            {
                "service": "demo",
                "action": "slow",
                "price": 4,
                "prompt_template": "{text}",
                "handler": "echo.delay",
                "params": {"delay_ms": 1500},
            },
            {
                "service": "demo",
                "action": "flaky",
                "price": 7,
                "prompt_template": "{text}",
                "handler": "echo.delay",
                "params": {"delay_ms": 1, "failure_rate": 1.0},
            },
        ],
    }
)


async def create_user(
    pool: asyncpg.Pool[Any], *, name: str, credits: int, role: Literal["user", "admin"] = "user"
) -> NewUser:
    async with pool.acquire() as conn, conn.transaction():
        return await accounts.create_user(conn, name=name, credits=credits, role=role)


async def load_demo_catalog(pool: asyncpg.Pool[Any]) -> None:
    async with pool.acquire() as conn:
        await apply_catalog(conn, DEMO_CATALOG)
