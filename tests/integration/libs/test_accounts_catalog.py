from typing import Any

import asyncpg
import pytest

from libs.accounts import UserExistsError
from libs.catalog import CatalogSpec, apply_catalog
from libs.security import hash_api_key
from tests.support import DEMO_CATALOG, ServerUrls, create_user


async def test_create_user_stores_only_the_key_hash_and_grants_credits(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> None:
    user = await create_user(db_pool, name="ada", credits=50)
    row = await db_pool.fetchrow(
        "SELECT u.balance, k.key_hash, k.prefix FROM users u JOIN api_keys k ON k.user_id = u.id"
    )
    assert row is not None
    assert row["balance"] == 50
    assert row["key_hash"] == hash_api_key(user.api_key)
    assert user.api_key not in str(dict(row))
    assert await db_pool.fetchval("SELECT sum(amount) FROM credit_ledger WHERE kind='grant'") == 50
    with pytest.raises(UserExistsError):
        await create_user(db_pool, name="ada", credits=1)


async def test_apply_catalog_is_idempotent(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> None:
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, DEMO_CATALOG)
        before = await conn.fetch("SELECT * FROM offers ORDER BY service, action")
        await apply_catalog(conn, DEMO_CATALOG)
        after = await conn.fetch("SELECT * FROM offers ORDER BY service, action")
    assert [dict(r) for r in before] == [dict(r) for r in after]
    assert len(after) == len(DEMO_CATALOG.offers)


def test_catalog_refuses_unknown_handler_and_unsafe_template() -> None:
    with pytest.raises(ValueError, match="names handler 'nope.x'"):
        CatalogSpec.model_validate(
            {
                "offers": [
                    {
                        "service": "a",
                        "action": "b",
                        "price": 1,
                        "prompt_template": "{x}",
                        "handler": "nope.x",
                    }
                ]
            }
        )
    with pytest.raises(ValueError, match="plain name"):
        CatalogSpec.model_validate(
            {
                "handlers": [{"id": "echo.text"}],
                "offers": [
                    {
                        "service": "a",
                        "action": "b",
                        "price": 1,
                        "prompt_template": "{x.__class__}",
                        "handler": "echo.text",
                    }
                ],
            }
        )


def test_catalog_refuses_service_names_the_api_owns() -> None:
    for service in ("request", "requests"):
        with pytest.raises(ValueError, match="reserved"):
            CatalogSpec.model_validate(
                {
                    "handlers": [{"id": "echo.text"}],
                    "offers": [
                        {
                            "service": service,
                            "action": "x",
                            "price": 1,
                            "prompt_template": "{x}",
                            "handler": "echo.text",
                        }
                    ],
                }
            )
