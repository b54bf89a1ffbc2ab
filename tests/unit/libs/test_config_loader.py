"""The config notations: ~ secrets (Fernet), ^ bytes, !ENV variables, nesting and lists."""

from typing import Any

import pytest
from cryptography.fernet import Fernet, MultiFernet

from libs.config import ConfigError, seal_source
from libs.config import _document as doc
from libs.config.operations import resolve_document

KEY = Fernet.generate_key()
FERNET = MultiFernet([Fernet(KEY)])

SOURCE = """
name: relai
~password: hunter2-secret
~port: 5432
^signature: héllo
endpoint: !ENV ${PROVIDER_URL}
region: !ENV ${REGION:-eu-west}
providers:
  openai:
    ~api_key: sk-live-abc
    base_url: !ENV ${OPENAI_BASE:-https://api.openai.example/v1}
    models: [gpt-a, gpt-b]
  list:
    - ~token: t0ken-in-a-list
      ^raw: bytes-in-a-list
    - plain
"""


def load(source: str, environ: dict[str, str], fernet: MultiFernet = FERNET) -> Any:
    return resolve_document("free", seal_source("free", source, FERNET, environ), fernet, environ)


def test_each_notation_nested_and_in_lists() -> None:
    loaded = load(SOURCE, {"PROVIDER_URL": "http://127.0.0.1:9000"})
    assert loaded == {
        "name": "relai",
        "password": "hunter2-secret",
        "port": 5432,
        "signature": "héllo".encode(),
        "endpoint": "http://127.0.0.1:9000",
        "region": "eu-west",
        "providers": {
            "openai": {
                "api_key": "sk-live-abc",
                "base_url": "https://api.openai.example/v1",
                "models": ["gpt-a", "gpt-b"],
            },
            "list": [{"token": "t0ken-in-a-list", "raw": b"bytes-in-a-list"}, "plain"],
        },
    }


def test_the_environment_wins_over_the_default_and_is_read_at_load() -> None:
    sealed = seal_source("free", SOURCE, FERNET, {"PROVIDER_URL": "a", "REGION": "x"})
    assert "endpoint: !ENV '${PROVIDER_URL}'" in sealed
    later = resolve_document("free", sealed, FERNET, {"PROVIDER_URL": "b", "REGION": "us"})
    assert (later["endpoint"], later["region"]) == ("b", "us")


def test_the_sealed_document_holds_no_plaintext_secret() -> None:
    sealed = seal_source("free", SOURCE, FERNET, {"PROVIDER_URL": "x"})
    for secret in ("hunter2-secret", "sk-live-abc", "t0ken-in-a-list", "5432"):
        assert secret not in sealed
    tokens = doc.parse(sealed)
    assert Fernet(KEY).decrypt(tokens["~password"].encode()) == b"hunter2-secret\n...\n"


def test_a_missing_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="environment variable PROVIDER_URL is not set"):
        load(SOURCE, {})


def test_a_wrong_fernet_key_is_a_clear_error() -> None:
    sealed = seal_source("free", SOURCE, FERNET, {"PROVIDER_URL": "x"})
    wrong = MultiFernet([Fernet(Fernet.generate_key())])
    with pytest.raises(ConfigError, match=r"~password: cannot decrypt .* Fernet key is wrong"):
        resolve_document("free", sealed, wrong, {"PROVIDER_URL": "x"})


def test_a_secret_without_a_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="no Fernet key is configured"):
        doc.resolve(doc.parse("~a: b"), None, {})


def test_bytes_are_utf8_and_must_be_strings() -> None:
    assert doc.resolve(doc.parse("^b: 'ü'"), None, {}) == {"b": "ü".encode()}
    assert doc.resolve(doc.parse("^b: !ENV ${B}"), None, {"B": "x"}) == {"b": b"x"}
    with pytest.raises(ConfigError, match=r"\^b: a \^ value must be a string, not int"):
        doc.resolve(doc.parse("^b: 12"), None, {})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("a: [1", "not valid YAML"),
        ("- a\n- b", "must be a mapping at the top level"),
        ("a: !ENV $HOME", r"!ENV expects \$\{VAR\}"),
        ("a: !ENV [x]", "!ENV takes a scalar"),
        ("~a: !ENV ${X}", "~a: a secret cannot be read from the environment"),
        ("~a: 1\na: 2", "the key 'a' appears twice"),
        ("outer:\n  ^x: 1", r"outer.\^x: a \^ value must be a string"),
    ],
)
def test_bad_sources_are_refused(source: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        seal_source("free", source, FERNET, {"X": "1"})


def test_a_secret_may_hold_a_mapping_and_masking_hides_it() -> None:
    sealed = doc.parse(seal_source("free", "~creds: {user: u, pass: p4ss}", FERNET, {}))
    assert doc.resolve(sealed, FERNET, {}) == {"creds": {"user": "u", "pass": "p4ss"}}
    assert doc.mask(sealed) == {"~creds": doc.MASK}
    assert doc.reveal(sealed, FERNET) == {"~creds": {"user": "u", "pass": "p4ss"}}


def test_rotation_reencrypts_under_the_new_key() -> None:
    sealed = doc.parse(seal_source("free", "~a: secret", FERNET, {}))
    new = Fernet.generate_key()
    rotated = doc.rotate(sealed, MultiFernet([Fernet(new), Fernet(KEY)]))
    assert rotated["~a"] != sealed["~a"]
    assert doc.resolve(rotated, MultiFernet([Fernet(new)]), {}) == {"a": "secret"}


def test_known_config_ids_are_validated_without_echoing_values() -> None:
    with pytest.raises(ConfigError) as raised:
        seal_source("worker", "handlers:\n  Bad-Id:\n    ~api_key: sk-123", FERNET, {})
    assert "handlers.Bad-Id" in str(raised.value)
    assert "sk-123" not in str(raised.value)
    with pytest.raises(ConfigError, match="carries a credential") as raised:
        seal_source("worker", "handlers:\n  openai.chat:\n    ~api_key: sk-123", FERNET, {})
    assert "sk-123" not in str(raised.value)
    with pytest.raises(ConfigError, match=r"integrations\.openai\.api_key: write it ~api_key"):
        seal_source(
            "worker",
            "integrations:\n  openai:\n    base_url: https://x\n    api_key: sk-1",
            FERNET,
            {},
        )
    env_key = "integrations:\n  openai:\n    base_url: https://x\n    api_key: !ENV ${K}\n"
    loaded = resolve_document(
        "worker", seal_source("worker", env_key, FERNET, {"K": "k"}), FERNET, {"K": "k"}
    )
    assert loaded.integrations["openai"].api_key.get_secret_value() == "k"
    with pytest.raises(ConfigError, match=r"integrations\.openai\.base_url"):
        seal_source("worker", "integrations:\n  openai:\n    ~api_key: sk-123", FERNET, {})
    with pytest.raises(ConfigError, match="api_offer: Extra inputs"):
        seal_source("api", "api_offer: demo/ask", FERNET, {})
    worker = resolve_document(
        "worker",
        seal_source("worker", "handlers: {echo.text: {~k: v}}", FERNET, {}),
        FERNET,
        {},
    )
    assert worker.handlers == {"echo.text": {"k": "v"}}
