"""What handler and offer ``params`` may carry: no credential, no environment variable's name,
and URLs only where the SSRF guard lets them point.

A catalog admin writes params; credentials and base URLs belong to the operator, who configures
them as named integrations (the central config ``worker``, ``integrations``) that params refer
to by ``integration``. So a param that carries a key (``api_key``, an ``Authorization`` header,
a value that reads like one) or names an environment variable (``api_key_env``, any ``*_env``)
is refused wherever params are written and again when a job runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from libs.security.masking import mask_text

_CREDENTIAL_KEYS = frozenset(
    {
        "apikey",
        "api_key",
        "api_key_header",
        "api_key_prefix",
        "access_key",
        "access_token",
        "auth_token",
        "authorization",
        "bearer",
        "client_secret",
        "cookie",
        "credentials",
        "password",
        "private_key",
        "proxy_authorization",
        "refresh_token",
        "secret",
        "secret_key",
        "set_cookie",
        "token",
    }
)
"""Keys (lower case, ``-`` read as ``_``) that hold a credential, as params or as headers."""

_CREDENTIAL_SUFFIXES = ("_api_key", "_apikey", "_secret", "_password", "_access_token")
_ENV_SUFFIX = "_env"
_URL_KEYS = re.compile(r"(^|_)(url|uri|endpoint)$")
_SCHEME = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]*://")


def _normal(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def key_problem(key: str) -> str | None:
    """Why a params key may not be written by the catalog, or None."""
    name = _normal(key)
    if key.startswith("~"):
        return f"{key!r} is a secret; secrets belong in an integration of the config 'worker'"
    if name.endswith(_ENV_SUFFIX):
        return f"{key!r} names an environment variable, which params may not read"
    if name in _CREDENTIAL_KEYS or name.endswith(_CREDENTIAL_SUFFIXES):
        return (
            f"{key!r} carries a credential; credentials belong in an integration of the config "
            "'worker', named by params.integration"
        )
    return None


def _paths(value: Any, path: str) -> Iterator[tuple[str, str | None, Any]]:
    """Every (path, key, value) in ``value``, nested dicts and lists included."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            yield where, str(key), item
            yield from _paths(item, where)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            where = f"{path}.{index}"
            yield where, None, item
            yield from _paths(item, where)


def credential_problem(params: Mapping[str, Any], where: str = "params") -> str | None:
    """The first credential, secret-looking header or environment variable's name in
    ``params`` (any depth), as a message naming where it is; None when there is none."""
    for path, key, value in _paths(params, where):
        if key is not None:
            problem = key_problem(key)
            if problem:
                return f"{path}: {problem}"
        if isinstance(value, str) and ".headers." in f".{path}" and mask_text(value) != value:
            return f"{path}: the header's value looks like a credential"
    return None


def without_credentials(value: Any, path: str = "params") -> tuple[Any, list[str]]:
    """``value`` without the keys :func:`credential_problem` refuses, at any depth, and the
    paths it dropped (for params written before they were refused)."""
    dropped: list[str] = []
    if isinstance(value, Mapping):
        kept: dict[str, Any] = {}
        for key, item in value.items():
            where = f"{path}.{key}"
            if key_problem(str(key)) is not None:
                dropped.append(where)
                continue
            kept[key], inner = without_credentials(item, where)
            dropped += inner
        return kept, dropped
    if isinstance(value, list):
        items = []
        for index, item in enumerate(value):
            cleaned, inner = without_credentials(item, f"{path}.{index}")
            items.append(cleaned)
            dropped += inner
        return items, dropped
    return value, dropped


def url_values(params: Mapping[str, Any], where: str = "params") -> Iterator[tuple[str, Any]]:
    """Every value in ``params`` (any depth) that is a URL: one under a URL-like key (``url``,
    ``base_url``, ``*_uri``, ``endpoint``), whatever its type, or any string with a scheme
    (``http://``, ``file://``...)."""
    for path, key, value in _paths(params, where):
        if key is not None and _URL_KEYS.search(_normal(key)):
            yield path, value
        elif isinstance(value, str) and _SCHEME.match(value):
            yield path, value
