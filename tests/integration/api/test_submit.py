import asyncio
from typing import Any

import asyncpg
import pytest

from libs.accounts import NewUser
from libs.contracts import TASKS_STREAM, TaskMessage
from libs.streams import decode
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.support import ServerUrls, load_demo_catalog


async def _balance(pool: "asyncpg.Pool[Any]", user: NewUser) -> tuple[int, int]:
    row = await pool.fetchrow("SELECT balance, reserved FROM users WHERE id = $1", user.id)
    assert row is not None
    return row["balance"], row["reserved"]


async def test_submit_reserves_price_and_queues_one_outbox_row(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    r = await api.client.post(
        "/svc/demo/greet", json={"name": "Ada", "age": "36"}, headers=auth(alice)
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "pending"
    assert body["duplicate"] is False
    assert body["links"] == {
        "self": f"/svc/request/{body['id']}",
        "websocket": f"/ws/requests/{body['id']}",
    }
    row = await db_pool.fetchrow(
        "SELECT prompt, price, inputs FROM requests WHERE id = $1::uuid", body["id"]
    )
    assert row is not None
    assert row["prompt"] == "Hello Ada, you are 36."
    assert row["inputs"] == {"name": "Ada", "age": "36"}
    assert await _balance(db_pool, alice) == (97, 3)
    ledger = await db_pool.fetch(
        "SELECT kind, amount FROM credit_ledger WHERE request_id = $1::uuid", body["id"]
    )
    assert [(e["kind"], e["amount"]) for e in ledger] == [("reserve", 3)]


async def test_relay_publishes_the_task_with_handler_prompt_and_traceparent(
    api: Api, alice: NewUser, redis_client: Any
) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    r = await api.client.post(
        "/svc/demo/sleep", json={"text": "hi"}, headers={**auth(alice), "traceparent": traceparent}
    )
    assert r.status_code == 202
    for _ in range(100):
        entries = await redis_client.xrange(TASKS_STREAM)
        if entries:
            break
        import asyncio

        await asyncio.sleep(0.02)
    assert len(entries) == 1
    task = decode(TaskMessage, entries[0][1])
    assert str(task.request_id) == r.json()["id"]
    assert (task.handler, task.prompt, task.attempt) == ("echo.delay", "hi", 1)
    assert task.params == {"delay_ms": 300}
    assert task.traceparent == traceparent


async def test_duplicate_submission_returns_same_id_and_charges_nothing(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    first = await api.client.post("/svc/demo/echo", json={"text": "same"}, headers=auth(alice))
    second = await api.client.post("/svc/demo/echo", json={"text": "same"}, headers=auth(alice))
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.json()["duplicate"] is True
    assert await _balance(db_pool, alice) == (98, 2)
    assert (
        await db_pool.fetchval("SELECT count(*) FROM outbox")
        + await db_pool.fetchval("SELECT count(*) FROM requests")
        <= 2
    )
    keyed = await api.client.post(
        "/svc/demo/echo", json={"text": "same"}, headers={**auth(alice), "Idempotency-Key": "run-2"}
    )
    assert keyed.json()["id"] != first.json()["id"]
    too_long = await api.client.post(
        "/svc/demo/echo",
        json={"text": "same"},
        headers={**auth(alice), "Idempotency-Key": "k" * 201},
    )
    assert too_long.status_code == 400
    assert "Idempotency-Key" in too_long.json()["detail"]
    empty = await api.client.post(
        "/svc/demo/echo", json={"text": "same"}, headers={**auth(alice), "Idempotency-Key": ""}
    )
    assert empty.status_code == 400
    assert empty.json()["detail"] == (
        "Idempotency-Key is empty: send a key, or no Idempotency-Key header"
    )
    assert await _balance(db_pool, alice) == (96, 4)


async def test_an_idempotency_key_names_one_request(
    api: Api, alice: NewUser, bob: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    keyed = {**auth(alice), "Idempotency-Key": "order-7"}
    first = await api.client.post("/svc/demo/echo", json={"text": "a"}, headers=keyed)
    again = await api.client.post("/svc/demo/echo", json={"text": "a"}, headers=keyed)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() | {"duplicate": False} == first.json()

    other_body = await api.client.post("/svc/demo/echo", json={"text": "b"}, headers=keyed)
    other_offer = await api.client.post("/svc/demo/ask", json={"prompt": "a"}, headers=keyed)
    for refused in (other_body, other_offer):
        assert refused.status_code == 422, refused.text
        assert "Idempotency-Key was already used" in refused.json()["detail"]
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 1
    assert await _balance(db_pool, alice) == (98, 2)

    # Concurrent submissions share a batch statement: the reused key is still refused alone.
    results = await asyncio.gather(
        *(
            api.client.post("/svc/demo/echo", json={"text": f"c{n}"}, headers=keyed)
            for n in range(5)
        ),
        api.client.post("/svc/demo/echo", json={"text": "fresh"}, headers=auth(alice)),
    )
    assert [r.status_code for r in results] == [422] * 5 + [202]
    bobs = {**auth(bob), "Idempotency-Key": "order-7"}  # keys are per user
    assert (await api.client.post("/svc/demo/echo", json={"text": "b"}, headers=bobs)).is_success


async def test_same_inputs_from_two_users_are_two_requests(
    api: Api, alice: NewUser, bob: NewUser
) -> None:
    a = await api.client.post("/svc/demo/echo", json={"text": "x"}, headers=auth(alice))
    b = await api.client.post("/svc/demo/echo", json={"text": "x"}, headers=auth(bob))
    assert a.json()["id"] != b.json()["id"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be a JSON object with the fields: name, age"),
        (b'{"name": "Ada"}', 422, "missing fields: age"),
        (b'{"name": "Ada", "age": "3", "price": "0"}', 422, "unknown fields: price"),
        (b'{"name": "Ada", "age": 3}', 422, "fields must be strings: age"),
    ],
)
async def test_bad_input_is_a_clear_4xx_and_writes_nothing(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", body: bytes, status: int, needle: str
) -> None:
    r = await api.client.post(
        "/svc/demo/greet", content=body, headers={**auth(alice), "content-type": "application/json"}
    )
    assert r.status_code == status
    assert needle in r.json()["detail"]
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 0
    assert await _balance(db_pool, alice) == (100, 0)


async def test_unknown_offer_is_404_and_missing_key_is_401(api: Api, alice: NewUser) -> None:
    r = await api.client.post("/svc/demo/nope", json={}, headers=auth(alice))
    assert r.status_code == 404
    assert "demo/nope" in r.json()["detail"]
    r = await api.client.post("/svc/demo/echo", json={"text": "x"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    r = await api.client.post(
        "/svc/demo/echo", json={"text": "x"}, headers={"Authorization": "Bearer rk_wrong"}
    )
    assert r.status_code == 401


async def test_short_balance_is_402_and_leaves_nothing(
    api: Api, db_pool: "asyncpg.Pool[Any]"
) -> None:
    from tests.support import create_user

    poor = await create_user(db_pool, name="poor", credits=4)
    r = await api.client.post("/svc/demo/sleep", json={"text": "x"}, headers=auth(poor))
    assert r.status_code == 402
    assert r.json()["code"] == "insufficient_credits"
    assert r.json()["price"] == 5
    for table in ("requests", "outbox"):
        assert await db_pool.fetchval(f"SELECT count(*) FROM {table}") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM credit_ledger WHERE kind <> 'grant'") == 0
    assert await _balance(db_pool, poor) == (4, 0)


async def test_failure_after_the_request_insert_leaves_no_row_and_no_charge(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    await db_pool.execute(
        """
        CREATE FUNCTION test_fail_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'outbox is down'; END $$;
        CREATE TRIGGER test_fail_outbox BEFORE INSERT ON outbox
        FOR EACH ROW EXECUTE FUNCTION test_fail_outbox();
        """
    )
    try:
        r = await api.client.post("/svc/demo/echo", json={"text": "x"}, headers=auth(alice))
    finally:
        await db_pool.execute(
            "DROP TRIGGER test_fail_outbox ON outbox; DROP FUNCTION test_fail_outbox();"
        )
    assert r.status_code == 500
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM credit_ledger WHERE kind <> 'grant'") == 0
    assert await _balance(db_pool, alice) == (100, 0)


async def test_ask_submits_to_the_default_offer(api: Api, alice: NewUser) -> None:
    r = await api.client.post("/ask", json={"prompt": "what is 2+2?"}, headers=auth(alice))
    assert r.status_code == 202
    view = await api.client.get(f"/svc/request/{r.json()['id']}", headers=auth(alice))
    assert (view.json()["service"], view.json()["action"]) == ("demo", "ask")
    assert view.json()["inputs"] == {"prompt": "what is 2+2?"}
    r = await api.client.post(
        "/ask", json={"prompt": "x", "user_id": "someone"}, headers=auth(alice)
    )
    assert r.status_code == 422


async def test_requests_are_visible_only_to_their_owner(
    api: Api, alice: NewUser, bob: NewUser
) -> None:
    r = await api.client.post("/svc/demo/echo", json={"text": "mine"}, headers=auth(alice))
    request_id = r.json()["id"]
    own = await api.client.get(f"/svc/request/{request_id}", headers=auth(alice))
    assert own.status_code == 200
    assert own.json()["status"] in ("pending", "running", "succeeded")
    other = await api.client.get(f"/svc/request/{request_id}", headers=auth(bob))
    missing = await api.client.get(
        "/svc/request/00000000-0000-0000-0000-000000000000", headers=auth(bob)
    )
    garbage = await api.client.get("/svc/request/not-a-uuid", headers=auth(bob))
    assert other.status_code == missing.status_code == garbage.status_code == 404
    assert other.json() == missing.json()
    listing = await api.client.get("/svc/requests", headers=auth(bob))
    assert listing.json() == {"items": [], "next_cursor": None}


async def test_list_paginates_newest_first(api: Api, alice: NewUser) -> None:
    ids = []
    for i in range(5):
        r = await api.client.post("/svc/demo/echo", json={"text": f"t{i}"}, headers=auth(alice))
        ids.append(r.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/svc/requests", params=params, headers=auth(alice))).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    bad = await api.client.get("/svc/requests", params={"cursor": "zzz"}, headers=auth(alice))
    assert bad.status_code == 400


async def test_me_shows_the_caller_and_balance(api: Api, alice: NewUser) -> None:
    await api.client.post("/svc/demo/echo", json={"text": "x"}, headers=auth(alice))
    me = (await api.client.get("/me", headers=auth(alice))).json()
    assert (me["name"], me["role"], me["balance"], me["reserved"]) == ("alice", "user", 98, 2)


async def test_concurrent_submissions_are_each_charged_exactly_once(
    api: Api, db_pool: "asyncpg.Pool[Any]"
) -> None:
    from tests.support import create_user

    rich = await create_user(db_pool, name="rich", credits=1000)
    texts = [f"t{n % 150}" for n in range(300)]  # 150 distinct requests, each submitted twice
    responses = await asyncio.gather(
        *(api.client.post("/svc/demo/echo", json={"text": t}, headers=auth(rich)) for t in texts)
    )
    assert {r.status_code for r in responses} == {202}
    by_text: dict[str, set[str]] = {}
    for text, r in zip(texts, responses, strict=True):
        by_text.setdefault(text, set()).add(r.json()["id"])
    assert all(len(ids) == 1 for ids in by_text.values())
    assert sum(not r.json()["duplicate"] for r in responses) == 150
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 150
    assert (
        await db_pool.fetchval("SELECT count(*) FROM credit_ledger WHERE kind = 'reserve'") == 150
    )
    assert await _balance(db_pool, rich) == (1000 - 150 * 2, 300)


async def test_concurrent_submissions_stop_exactly_at_the_balance(
    api: Api, db_pool: "asyncpg.Pool[Any]"
) -> None:
    from tests.support import create_user

    user = await create_user(db_pool, name="tight", credits=21)
    responses = await asyncio.gather(
        *(
            api.client.post("/svc/demo/echo", json={"text": f"x{n}"}, headers=auth(user))
            for n in range(30)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] * 10 + [402] * 20
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 10
    assert await db_pool.fetchval("SELECT count(*) FROM credit_ledger WHERE kind = 'reserve'") == 10
    assert await _balance(db_pool, user) == (1, 20)


async def test_oversized_body_is_413_and_overlong_prompt_is_422(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", alice: NewUser
) -> None:
    await load_demo_catalog(db_pool)
    settings = settings_for(servers, max_body_bytes=1000, max_prompt_chars=100)
    async with serving(settings) as small:
        big = await small.client.post(
            "/svc/demo/echo", json={"text": "x" * 2000}, headers=auth(alice)
        )
        assert big.status_code == 413
        long = await small.client.post(
            "/svc/demo/greet", json={"name": "n" * 90, "age": "3" * 20}, headers=auth(alice)
        )
        assert long.status_code == 422
        assert "the limit is 100" in long.json()["detail"]
        fits = await small.client.post("/svc/demo/echo", json={"text": "x"}, headers=auth(alice))
        assert fits.status_code == 202
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 1
