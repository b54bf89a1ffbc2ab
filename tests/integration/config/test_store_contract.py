"""The contract every config store keeps: the same tests run against Postgres and MongoDB."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from libs.config import (
    ChecksumError,
    NothingToRollBackError,
    StoredVersion,
    UnknownConfigError,
    VersionExistsError,
    checksum,
)
from tests.integration.config.conftest import Backend


async def test_upload_keeps_every_version_with_author_time_and_checksum(backend: Backend) -> None:
    store = backend.store
    before = datetime.now(UTC) - timedelta(seconds=5)
    first = await store.upload("api", "a: 1\n", author="ada")
    second = await store.upload("api", "a: 2\n", author="bob")
    named = await store.upload("api", "a: 3\n", author="ada", version="1.0")
    auto = await store.upload("api", "a: 4\n", author="ada")
    assert [v.version for v in (first, second, named, auto)] == ["1", "2", "1.0", "4"]
    assert (first.author, second.author) == ("ada", "bob")
    assert first.checksum == checksum("a: 1\n")
    assert first.checksum.startswith("sha256:")
    assert before < first.created_at <= second.created_at < datetime.now(UTC) + timedelta(seconds=5)
    assert await store.get("api", "2") == second
    with pytest.raises(VersionExistsError, match="already has a version '1.0'"):
        await store.upload("api", "a: 5\n", author="ada", version="1.0")
    assert len(await store.versions("api")) == 4


async def test_list_in_upload_order_with_the_active_one(backend: Backend) -> None:
    store = backend.store
    for n in range(3):
        await store.upload("worker", f"n: {n}\n", author="ada")
    await store.upload("api", "x: 1\n", author="ada")
    await store.activate("worker", "2", author="ada")
    listed = await store.versions("worker")
    assert [(v.version, v.active) for v in listed] == [("1", False), ("2", True), ("3", False)]
    summaries = {s.config_id: s for s in await store.summaries()}
    assert sorted(summaries) == ["api", "worker"]
    assert (summaries["worker"].active_version, summaries["worker"].latest_version) == ("2", "3")
    assert (summaries["worker"].versions, summaries["api"].active_version) == (3, None)
    with pytest.raises(UnknownConfigError, match="no config 'nope'"):
        await store.versions("nope")


async def test_activate_makes_one_version_active(backend: Backend) -> None:
    store = backend.store
    await store.upload("api", "a: 1\n", author="ada")
    await store.upload("api", "a: 2\n", author="ada")
    assert await store.active_versions(["api", "other"]) == {}
    with pytest.raises(UnknownConfigError, match="'api' has no active version"):
        await store.get("api")
    await store.activate("api", "1", author="ada")
    await store.activate("api", "2", author="ada")
    assert await store.active_versions(["api", "other"]) == {"api": "2"}
    active = await store.get("api")
    assert (active.version, active.document, active.active) == ("2", "a: 2\n", True)
    with pytest.raises(UnknownConfigError, match="no version '9' of config 'api'"):
        await store.activate("api", "9", author="ada")
    with pytest.raises(UnknownConfigError, match="no config 'nope'"):
        await store.activate("nope", "1", author="ada")
    assert await store.active_versions(["api"]) == {"api": "2"}


async def test_rollback_walks_back_through_the_activations(backend: Backend) -> None:
    store = backend.store
    for n in range(3):
        await store.upload("api", f"a: {n}\n", author="ada")
    with pytest.raises(NothingToRollBackError):
        await store.rollback("api", author="ada")
    for version in ("1", "3", "2"):
        await store.activate("api", version, author="ada")
    assert await store.rollback("api", author="bob") == "3"
    assert await store.active_versions(["api"]) == {"api": "3"}
    assert await store.rollback("api", author="bob") == "1"
    with pytest.raises(NothingToRollBackError, match="no earlier activation"):
        await store.rollback("api", author="bob")
    assert (await store.get("api")).version == "1"
    await store.activate("api", "2", author="ada")
    assert await store.rollback("api", author="bob") == "1"


async def test_concurrent_uploads_get_distinct_versions(backend: Backend) -> None:
    store = backend.store
    uploaded = await asyncio.gather(
        *(store.upload("api", f"n: {n}\n", author="ada") for n in range(20))
    )
    assert sorted(int(v.version) for v in uploaded) == list(range(1, 21))
    assert len(await store.versions("api")) == 20

    racing = await asyncio.gather(
        *(store.upload("api", f"m: {n}\n", author="ada", version="x") for n in range(5)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, StoredVersion) for r in racing) == 1
    assert sum(isinstance(r, VersionExistsError) for r in racing) == 4


async def test_concurrent_activations_keep_one_history(backend: Backend) -> None:
    store = backend.store
    for n in range(5):
        await store.upload("api", f"n: {n}\n", author="ada")
    await asyncio.gather(*(store.activate("api", str(n), author="ada") for n in range(1, 6)))
    seen = [(await store.get("api")).version]
    for _ in range(4):
        seen.append(await store.rollback("api", author="ada"))
    assert sorted(seen) == ["1", "2", "3", "4", "5"]
    with pytest.raises(NothingToRollBackError):
        await store.rollback("api", author="ada")


async def test_checksum_detects_a_document_altered_in_the_store(backend: Backend) -> None:
    store = backend.store
    stored = await store.upload("api", "a: 1\n", author="ada")
    assert stored.verified() == "a: 1\n"
    await backend.tamper("api", stored.version, "a: 2\n")
    altered = await store.get("api", stored.version)
    with pytest.raises(ChecksumError, match="does not match its checksum"):
        altered.verified()


async def test_rewrite_all_is_all_or_nothing(backend: Backend) -> None:
    store = backend.store
    await store.upload("api", "a: 1\n", author="ada")
    await store.upload("worker", "b: 1\n", author="ada")

    def failing(version: StoredVersion) -> str:
        if version.config_id == "worker":
            raise ValueError("cannot")
        return "rewritten\n"

    with pytest.raises(ValueError, match="cannot"):
        await store.rewrite_all(failing)
    assert (await store.get("api", "1")).document == "a: 1\n"

    assert await store.rewrite_all(lambda v: v.document.upper()) == 2
    rewritten = await store.get("api", "1")
    assert rewritten.document == "A: 1\n"
    assert rewritten.verified() == "A: 1\n"


async def test_watch_announces_activations_or_returns(backend: Backend) -> None:
    store = backend.store
    await store.upload("api", "a: 1\n", author="ada")
    seen: list[str] = []
    notified = asyncio.Event()

    def on_change(config_id: str) -> None:
        seen.append(config_id)
        notified.set()

    watching = asyncio.create_task(store.watch(on_change))
    try:
        await asyncio.sleep(0.3)  # the listener is up
        await store.activate("api", "1", author="ada")
        done, _ = await asyncio.wait(
            [watching, asyncio.create_task(notified.wait())],
            timeout=10,
            return_when=asyncio.FIRST_COMPLETED,
        )
        assert done, "neither notified nor returned"
        if watching not in done:  # a store that pushes changes
            assert seen == ["api"]
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
