"""The alternative store: MongoDB through PyMongo's async API (``AsyncMongoClient``).

Three collections share a prefix (``meta.collection``): ``<prefix>`` holds one document per
config id (its active version and activation, and the upload counter), ``<prefix>_versions``
every version, ``<prefix>_activations`` the activation history. Without multi-document
transactions, updates of the config's document are conditional on the activation they replace,
so concurrent activations retry instead of losing one another.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, OperationFailure

from libs.config._store import ConfigSummary, StoredVersion, checksum
from libs.config.errors import NothingToRollBackError, UnknownConfigError, VersionExistsError
from libs.logs import get_logger

log = get_logger(__name__)

Doc = dict[str, Any]


def _now() -> datetime:
    """Now, to the millisecond: what MongoDB keeps, so a stored time reads back unchanged."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _version(doc: Mapping[str, Any], active_version: str | None) -> StoredVersion:
    return StoredVersion(
        config_id=doc["config_id"],
        version=doc["version"],
        document=doc["document"],
        checksum=doc["checksum"],
        author=doc["author"],
        created_at=doc["created_at"],
        active=doc["version"] == active_version,
    )


class MongoConfigStore:
    def __init__(self, client: AsyncMongoClient[Doc], *, collection: str) -> None:
        self._client = client
        db = client.get_default_database(default="relai")
        self._configs: AsyncCollection[Doc] = db[collection]
        self._versions: AsyncCollection[Doc] = db[f"{collection}_versions"]
        self._activations: AsyncCollection[Doc] = db[f"{collection}_activations"]

    @classmethod
    async def connect(cls, url: str, *, collection: str) -> MongoConfigStore:
        client: AsyncMongoClient[Doc] = AsyncMongoClient(url, tz_aware=True)
        store = cls(client, collection=collection)
        await store._versions.create_index(
            [("config_id", ASCENDING), ("version", ASCENDING)], unique=True
        )
        await store._versions.create_index([("config_id", ASCENDING), ("seq", ASCENDING)])
        return store

    async def upload(
        self, config_id: str, document: str, *, author: str, version: str | None = None
    ) -> StoredVersion:
        while True:
            state = await self._configs.find_one_and_update(
                {"_id": config_id},
                {
                    "$inc": {"next_seq": 1},
                    "$setOnInsert": {
                        "active_version": None,
                        "activation_id": None,
                        "updated_at": _now(),
                    },
                },
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            assert state is not None
            seq = int(state["next_seq"])
            doc: Doc = {
                "config_id": config_id,
                "version": version or str(seq),
                "seq": seq,
                "document": document,
                "checksum": checksum(document),
                "author": author,
                "created_at": _now(),
            }
            try:
                await self._versions.insert_one(doc)
            except DuplicateKeyError:
                if version is not None:
                    raise VersionExistsError(config_id, version) from None
                continue  # an explicit version took this number: take the next
            return _version(doc, state["active_version"])

    async def _state(self, config_id: str) -> Doc:
        state = await self._configs.find_one({"_id": config_id})
        if state is None:
            raise UnknownConfigError(config_id)
        return state

    async def get(self, config_id: str, version: str | None = None) -> StoredVersion:
        state = await self._configs.find_one({"_id": config_id})
        active = state["active_version"] if state else None
        wanted = version if version is not None else active
        doc = None
        if wanted is not None:
            doc = await self._versions.find_one({"config_id": config_id, "version": wanted})
        if doc is None:
            raise UnknownConfigError(config_id, version or "active")
        return _version(doc, active)

    async def versions(self, config_id: str) -> list[StoredVersion]:
        state = await self._configs.find_one({"_id": config_id})
        active = state["active_version"] if state else None
        docs = await self._versions.find({"config_id": config_id}).sort("seq", ASCENDING).to_list()
        if not docs:
            raise UnknownConfigError(config_id)
        return [_version(d, active) for d in docs]

    async def summaries(self) -> list[ConfigSummary]:
        out: list[ConfigSummary] = []
        async for state in self._configs.find({}).sort("_id", ASCENDING):
            docs = (
                await self._versions.find({"config_id": state["_id"]})
                .sort("seq", ASCENDING)
                .to_list()
            )
            if not docs:
                continue
            out.append(
                ConfigSummary(
                    config_id=state["_id"],
                    active_version=state["active_version"],
                    latest_version=docs[-1]["version"],
                    versions=len(docs),
                    updated_at=max(state["updated_at"], docs[-1]["created_at"]),
                )
            )
        return out

    async def active_versions(self, config_ids: Collection[str]) -> dict[str, str]:
        cursor = self._configs.find(
            {"_id": {"$in": list(config_ids)}, "active_version": {"$ne": None}},
            {"active_version": 1},
        )
        return {d["_id"]: d["active_version"] async for d in cursor}

    async def activate(self, config_id: str, version: str, *, author: str) -> None:
        while True:
            state = await self._state(config_id)
            if await self._versions.find_one({"config_id": config_id, "version": version}) is None:
                raise UnknownConfigError(config_id, version)
            if await self._swap(state, version, author=author, previous=state["activation_id"]):
                return

    async def rollback(self, config_id: str, *, author: str) -> str:
        while True:
            state = await self._state(config_id)
            current = await self._activations.find_one({"_id": state["activation_id"]})
            previous_id = current["previous_id"] if current else None
            previous = await self._activations.find_one({"_id": previous_id})
            if previous is None:
                raise NothingToRollBackError(config_id)
            version = str(previous["version"])
            if await self._swap(state, version, author=author, previous=previous["previous_id"]):
                return version

    async def _swap(
        self, state: Doc, version: str, *, author: str, previous: ObjectId | None
    ) -> bool:
        """Record an activation and make it current, unless another one got there first."""
        now = _now()
        activation = await self._activations.insert_one(
            {
                "config_id": state["_id"],
                "version": version,
                "previous_id": previous,
                "author": author,
                "activated_at": now,
            }
        )
        swapped = await self._configs.update_one(
            {"_id": state["_id"], "activation_id": state["activation_id"]},
            {
                "$set": {
                    "active_version": version,
                    "activation_id": activation.inserted_id,
                    "updated_at": now,
                }
            },
        )
        if swapped.modified_count == 1:
            return True
        await self._activations.delete_one({"_id": activation.inserted_id})
        return False

    async def rewrite_all(self, transform: Callable[[StoredVersion], str]) -> int:
        # Every new document is made before the first write: a version no key can decrypt
        # stops the rotation before anything changed.
        actives = {s["_id"]: s["active_version"] async for s in self._configs.find({})}
        updates: list[UpdateOne] = []
        async for doc in self._versions.find({}).sort([("config_id", 1), ("seq", 1)]):
            document = transform(_version(doc, actives.get(doc["config_id"])))
            updates.append(
                UpdateOne(
                    {"_id": doc["_id"]},
                    {"$set": {"document": document, "checksum": checksum(document)}},
                )
            )
        if updates:
            await self._versions.bulk_write(updates, ordered=True)
        return len(updates)

    async def watch(self, on_change: Callable[[str], None]) -> None:
        try:
            async with await self._configs.watch(
                [{"$match": {"updateDescription.updatedFields.activation_id": {"$exists": True}}}]
            ) as stream:
                async for change in stream:
                    on_change(str(change["documentKey"]["_id"]))
        except OperationFailure as exc:
            # Change streams need a replica set; a standalone server is polled instead.
            log.info("config change stream unavailable; polling", error=str(exc))

    async def close(self) -> None:
        await self._client.close()
