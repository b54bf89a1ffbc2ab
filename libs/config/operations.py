"""What operators do with configs: upload (validated, sealed), show, diff, rotate keys; and what
services do: load a stored version."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import MultiFernet

from libs.config import _document, schemas
from libs.config._store import ConfigStore, StoredVersion
from libs.config.errors import ConfigError


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    config_id: str
    version: str
    checksum: str
    data: Any
    """The resolved config: its schema's model (``WorkerConfig``...) or a mapping."""


def seal_source(config_id: str, text: str, fernet: MultiFernet, environ: Mapping[str, str]) -> str:
    """The document to store for the source ``text``: secrets encrypted. It is loaded exactly as
    a service will load it first, so a config that fails to load or validate is refused here
    (``ConfigError``) and never stored, and so is an integration's key written in plain text."""
    tree = _document.parse(text)
    if config_id == "worker":
        _keys_are_sealed(tree)
    sealed = _document.seal(tree, fernet)
    document = _document.dump(sealed)
    resolve_document(config_id, document, fernet, environ)
    return document


def _keys_are_sealed(tree: Mapping[str, Any]) -> None:
    integrations = tree.get("integrations")
    if not isinstance(integrations, Mapping):
        return
    for name, integration in integrations.items():
        if not isinstance(integration, Mapping):
            continue
        value = integration.get("api_key")
        if value is not None and not isinstance(value, _document.EnvRef):
            raise ConfigError(
                f"integrations.{name}.api_key: write it ~api_key (stored encrypted) or read it "
                "with !ENV; a key written in plain text would be stored as it is"
            )


def resolve_document(
    config_id: str, document: str, fernet: MultiFernet | None, environ: Mapping[str, str]
) -> Any:
    resolved = _document.resolve(_document.parse(document), fernet, environ)
    return schemas.validate(config_id, resolved)


def load_version(
    stored: StoredVersion, fernet: MultiFernet | None, environ: Mapping[str, str]
) -> LoadedConfig:
    """A stored version as a service uses it; ``ConfigError`` if it cannot be."""
    data = resolve_document(stored.config_id, stored.verified(), fernet, environ)
    return LoadedConfig(stored.config_id, stored.version, stored.checksum, data)


async def upload(
    store: ConfigStore,
    config_id: str,
    text: str,
    *,
    fernet: MultiFernet,
    environ: Mapping[str, str],
    author: str,
    version: str | None = None,
    activate: bool = False,
) -> StoredVersion:
    document = seal_source(config_id, text, fernet, environ)
    stored = await store.upload(config_id, document, author=author, version=version)
    if activate:
        await store.activate(config_id, stored.version, author=author)
    return stored


def show(stored: StoredVersion, fernet: MultiFernet | None, *, reveal: bool) -> str:
    """The version as YAML: secrets masked, or decrypted (``reveal``) under their ``~key``."""
    sealed = _document.parse(stored.verified())
    if reveal:
        if fernet is None:
            raise ValueError("revealing secrets needs the Fernet keys")
        return _document.dump(_document.reveal(sealed, fernet))
    return _document.dump(_document.mask(sealed))


def diff(old: StoredVersion, new: StoredVersion, fernet: MultiFernet) -> str:
    """A unified diff of two versions with secrets masked; a secret that changed shows as
    ``******** (changed)`` on the new side."""
    old_sealed = _document.parse(old.verified())
    new_sealed = _document.parse(new.verified())
    old_secrets = _document.secrets(_document.reveal(old_sealed, fernet))
    new_secrets = _document.secrets(_document.reveal(new_sealed, fernet))

    def label(path: str) -> str:
        if path in old_secrets and old_secrets[path] != new_secrets.get(path):
            return f"{_document.MASK} (changed)"
        return _document.MASK

    before = _document.dump(_document.mask(old_sealed)).splitlines(keepends=True)
    after = _document.dump(_document.mask(new_sealed, label)).splitlines(keepends=True)
    name = old.config_id
    return "".join(
        difflib.unified_diff(
            before, after, fromfile=f"{name}@{old.version}", tofile=f"{name}@{new.version}"
        )
    )


async def rotate_keys(store: ConfigStore, fernet: MultiFernet) -> int:
    """Re-encrypt every secret of every stored version under the first key; all versions or,
    if one cannot be decrypted with any key, none (``ConfigError``)."""

    def rotated(stored: StoredVersion) -> str:
        sealed = _document.parse(stored.verified())
        return _document.dump(_document.rotate(sealed, fernet))

    return await store.rewrite_all(rotated)
