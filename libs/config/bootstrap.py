"""A component's bootstrap config: which store holds its configs, with which Fernet keys, and
which config ids (and versions) it loads. Read from the file ``RELAI_CONFIG_FILE`` names.

```yaml
meta:
  source: postgres            # or mongo (MONGO_URL)
  collection: relai_config    # mongo: prefix of its collections
  keys:                       # Fernet keys; the first encrypts, all decrypt
    - !ENV ${RELAI_CONFIG_KEY}
    - !ENV ${RELAI_CONFIG_OLD_KEY:-}
configs:
  worker: active              # follow activations
  service_map: "1.0"          # pinned
```
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.fernet import Fernet, MultiFernet
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from libs.config import _document
from libs.config._store import ConfigStore
from libs.config.errors import ConfigError

ACTIVE = "active"


def _as_text(value: Any) -> Any:
    # ``api: 1.0`` is a float to YAML; a version is text.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Version = Annotated[str, BeforeValidator(_as_text), Field(min_length=1)]


class StoreSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["postgres", "mongo"] = "postgres"
    collection: str = Field(default="relai_config", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    keys: list[str] = Field(default_factory=list)


class Bootstrap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    meta: StoreSpec = Field(default_factory=StoreSpec)
    configs: dict[str, Version] = Field(default_factory=dict)
    """Config id -> a version, or ``active`` to follow activations."""

    @property
    def has_keys(self) -> bool:
        """Whether any key is set (``!ENV ${RELAI_CONFIG_KEY:-}`` left empty names none)."""
        return any(key.strip() for key in self.meta.keys)

    def fernet(self) -> MultiFernet:
        """The configured keys; the first encrypts. ``ConfigError`` if none or one is invalid."""
        keys = [key for key in self.meta.keys if key.strip()]
        if not keys:
            raise ConfigError(
                "the bootstrap config names no Fernet key (meta.keys); "
                "make one with `relai config gen-key`"
            )
        fernets = []
        for index, key in enumerate(keys):
            try:
                fernets.append(Fernet(key.strip()))
            except ValueError:
                raise ConfigError(
                    f"meta.keys[{index}] is not a Fernet key (32 url-safe base64-encoded bytes)"
                ) from None
        return MultiFernet(fernets)


def read_bootstrap(path: Path, environ: Mapping[str, str]) -> Bootstrap:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the bootstrap config {path}: {exc.strerror}") from exc
    try:
        tree = _document.resolve(_document.parse(text), None, environ)
        return Bootstrap.model_validate(tree)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path} is not a valid bootstrap config: {problems}") from None


@asynccontextmanager
async def open_store(
    bootstrap: Bootstrap,
    *,
    database_url: str,
    mongo_url: str | None,
    direct_url: str | None = None,
) -> AsyncIterator[ConfigStore]:
    """The store the bootstrap config names, on the servers of the process settings. A Postgres
    store reads through ``database_url`` and listens on ``direct_url`` (``DATABASE_DIRECT_URL``,
    when ``database_url`` is a transaction pooler)."""
    store: ConfigStore
    if bootstrap.meta.source == "mongo":
        if not mongo_url:
            raise ConfigError("meta.source is mongo, but MONGO_URL is not set")
        from libs.config.mongo import MongoConfigStore  # see the package's docstring

        store = await MongoConfigStore.connect(mongo_url, collection=bootstrap.meta.collection)
        try:
            yield store
        finally:
            await store.close()
        return
    from libs.config.postgres import PostgresConfigStore
    from libs.db import create_pool

    direct = direct_url or database_url
    pool = await create_pool(database_url, min_size=1, max_size=2, pooled=direct != database_url)
    try:
        yield PostgresConfigStore(pool, database_url=direct)
    finally:
        await pool.close()
