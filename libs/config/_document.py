"""The config notations, on PyYAML's safe loader and dumper.

- ``~key: value``: a secret. ``seal`` encrypts its value with Fernet (the stored form holds only
  the token); ``resolve`` decrypts it back into ``key``.
- ``^key: value``: loaded as bytes (the UTF-8 encoding of the string).
- ``key: !ENV ${VAR}`` or ``!ENV ${VAR:-default}``: read from the environment when loaded.

A document goes through three forms: the *source* an operator writes, the *sealed* form that is
stored (secrets encrypted, ``!ENV`` kept as a reference), and the *resolved* mapping a service
uses (secrets decrypted, bytes decoded, environment read).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from cryptography.fernet import InvalidToken, MultiFernet

from libs.config.errors import ConfigError

SECRET = "~"
BYTES = "^"
ENV_TAG = "!ENV"
MASK = "********"

_ENV_EXPR = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?\}$", re.S)


@dataclass(frozen=True, slots=True)
class EnvRef:
    """``!ENV ${NAME}`` or ``!ENV ${NAME:-default}``: a value the environment supplies at load."""

    name: str
    default: str | None = None

    @classmethod
    def parse(cls, expression: str) -> EnvRef:
        found = _ENV_EXPR.match(expression.strip())
        if found is None:
            raise ConfigError(f"!ENV expects ${{VAR}} or ${{VAR:-default}}, not {expression!r}")
        return cls(found["name"], found["default"])

    def expression(self) -> str:
        tail = "" if self.default is None else f":-{self.default}"
        return f"${{{self.name}{tail}}}"

    def read(self, environ: Mapping[str, str]) -> str:
        value = environ.get(self.name, self.default)
        if value is None:
            raise ConfigError(f"environment variable {self.name} is not set (needed by !ENV)")
        return value


class _Loader(yaml.SafeLoader):
    pass


def _construct_env(loader: yaml.SafeLoader, node: yaml.Node) -> EnvRef:
    if not isinstance(node, yaml.ScalarNode):
        raise ConfigError(f"!ENV takes a scalar ${{VAR}}, at line {node.start_mark.line + 1}")
    return EnvRef.parse(loader.construct_scalar(node))


_Loader.add_constructor(ENV_TAG, _construct_env)


class _Dumper(yaml.SafeDumper):
    pass


def _represent_env(dumper: yaml.SafeDumper, ref: EnvRef) -> yaml.Node:
    return dumper.represent_scalar(ENV_TAG, ref.expression())


_Dumper.add_representer(EnvRef, _represent_env)


def parse(text: str) -> dict[str, Any]:
    """The tree of a source or sealed document; ``!ENV`` values become ``EnvRef``."""
    try:
        tree = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}") from exc
    if not isinstance(tree, dict):
        raise ConfigError("a config must be a mapping at the top level")
    return tree


def dump(tree: Mapping[str, Any]) -> str:
    return yaml.dump(dict(tree), Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def _walk(value: Any, on_entry: Callable[[str, Any, str], tuple[str, Any]], path: str = "") -> Any:
    """Rebuild ``value``, letting ``on_entry(key, value, path)`` rewrite every mapping entry."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            new_key, new_item = on_entry(key, _walk(item, on_entry, here), here)
            if new_key in out:
                raise ConfigError(f"{here}: the key {new_key!r} appears twice")
            out[new_key] = new_item
        return out
    if isinstance(value, list):
        return [_walk(item, on_entry, f"{path}[{i}]") for i, item in enumerate(value)]
    return value


def _notation(key: Any) -> str | None:
    if isinstance(key, str) and len(key) > 1 and key[0] in (SECRET, BYTES):
        return key[0]
    return None


def _contains_env(value: Any) -> bool:
    if isinstance(value, EnvRef):
        return True
    if isinstance(value, dict):
        return any(_contains_env(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_env(v) for v in value)
    return False


def seal(tree: Mapping[str, Any], fernet: MultiFernet) -> dict[str, Any]:
    """The stored form of a source tree: every ``~key`` value replaced by its Fernet token."""

    def entry(key: str, value: Any, path: str) -> tuple[str, Any]:
        if _notation(key) == SECRET:
            if _contains_env(value):
                raise ConfigError(f"{path}: a secret cannot be read from the environment (!ENV)")
            plain = yaml.safe_dump(value, allow_unicode=True).encode()
            return key, fernet.encrypt(plain).decode()
        return key, value

    return _walk(dict(tree), entry)  # type: ignore[no-any-return]


def _decrypt(token: Any, fernet: MultiFernet, path: str) -> Any:
    if not isinstance(token, str):
        raise ConfigError(f"{path}: a stored secret must be a Fernet token")
    try:
        plain = fernet.decrypt(token.encode())
    except InvalidToken:
        raise ConfigError(
            f"{path}: cannot decrypt the secret: the Fernet key is wrong "
            "(or the value was not encrypted with any of the configured keys)"
        ) from None
    return yaml.safe_load(plain.decode())


def _to_bytes(value: Any, path: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"{path}: a ^ value must be a string, not {type(value).__name__}")
    return value.encode()


def resolve(
    sealed: Mapping[str, Any], fernet: MultiFernet | None, environ: Mapping[str, str]
) -> dict[str, Any]:
    """What a service uses: secrets decrypted, ``^`` values as bytes, ``!ENV`` read."""

    def read(value: Any, path: str) -> Any:
        return value.read(environ) if isinstance(value, EnvRef) else value

    def entry(key: str, value: Any, path: str) -> tuple[str, Any]:
        notation = _notation(key)
        if notation == SECRET:
            if fernet is None:
                raise ConfigError(f"{path}: a secret, but no Fernet key is configured")
            return key[1:], _decrypt(value, fernet, path)
        if notation == BYTES:
            return key[1:], _to_bytes(value, path)
        return key, value

    return _walk(_resolve_env(dict(sealed), read, ""), entry)  # type: ignore[no-any-return]


def _resolve_env(value: Any, read: Callable[[Any, str], Any], path: str) -> Any:
    if isinstance(value, list):
        return [_resolve_env(v, read, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _resolve_env(v, read, f"{path}.{k}") for k, v in value.items()}
    return read(value, path)


def reveal(sealed: Mapping[str, Any], fernet: MultiFernet) -> dict[str, Any]:
    """The source form again: secrets decrypted, still under their ``~key``."""

    def entry(key: str, value: Any, path: str) -> tuple[str, Any]:
        if _notation(key) == SECRET:
            return key, _decrypt(value, fernet, path)
        return key, value

    return _walk(dict(sealed), entry)  # type: ignore[no-any-return]


def mask(sealed: Mapping[str, Any], label: Callable[[str], str] = lambda _path: MASK) -> Any:
    """The sealed tree with every secret replaced by ``label(path)`` (``********``)."""

    def entry(key: str, value: Any, path: str) -> tuple[str, Any]:
        return (key, label(path)) if _notation(key) == SECRET else (key, value)

    return _walk(dict(sealed), entry)


def secrets(revealed: Mapping[str, Any]) -> dict[str, Any]:
    """Every secret of a revealed tree, by path."""
    found: dict[str, Any] = {}

    def entry(key: str, value: Any, path: str) -> tuple[str, Any]:
        if _notation(key) == SECRET:
            found[path] = value
        return key, value

    _walk(dict(revealed), entry)
    return found


def rotate(sealed: Mapping[str, Any], fernet: MultiFernet) -> dict[str, Any]:
    """The sealed tree with every secret re-encrypted under the primary key."""

    def entry(key: str, value: Any, path: str) -> tuple[str, Any]:
        if _notation(key) == SECRET:
            _decrypt(value, fernet, path)  # a clear error if no key fits
            return key, fernet.rotate(value.encode()).decode()
        return key, value

    return _walk(dict(sealed), entry)  # type: ignore[no-any-return]
