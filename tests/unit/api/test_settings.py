"""The API refuses to start on OIDC settings that would let in tokens it should not, or on a
metrics token (or a file URL key) too short to keep anyone out; its metrics go to an operator
port."""

import pytest
from pydantic import ValidationError

from services.api.files.signing import FileUrls
from services.api.settings import ApiSettings

ISSUER = "https://issuer.example"
JWKS = "https://issuer.example/jwks"


def test_oidc_without_an_audience_does_not_start() -> None:
    """The attack: with OIDC on and no audience, a token the issuer made for any other
    application signed in here."""
    with pytest.raises(ValidationError, match="RELAI_OIDC_ISSUER needs RELAI_OIDC_AUDIENCE"):
        ApiSettings(oidc_issuer=ISSUER, oidc_jwks_url=JWKS)
    settings = ApiSettings(oidc_issuer=ISSUER, oidc_jwks_url=JWKS, oidc_audience="relai")
    assert settings.oidc_audience == "relai"


def test_oidc_without_its_keys_does_not_start() -> None:
    with pytest.raises(ValidationError, match="RELAI_OIDC_ISSUER needs RELAI_OIDC_JWKS_URL"):
        ApiSettings(oidc_issuer=ISSUER, oidc_audience="relai")


def test_metrics_go_to_an_operator_port_and_a_token_is_optional(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("RELAI_API_METRICS_PORT", "RELAI_METRICS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    settings = ApiSettings()
    assert (settings.api_metrics_port, settings.api_port) == (9103, 8000)
    assert settings.metrics_token is None
    assert settings.metrics_bearer is None
    monkeypatch.setenv("RELAI_METRICS_TOKEN", "   ")  # as an empty line of an env file
    assert ApiSettings().metrics_bearer is None


def test_a_short_metrics_token_does_not_start() -> None:
    with pytest.raises(ValidationError, match="at least 16 characters"):
        ApiSettings(metrics_token="guessable")
    settings = ApiSettings(metrics_token="long-enough-metrics-token")
    assert settings.metrics_bearer == "long-enough-metrics-token"
    assert "long-enough" not in repr(settings)


def test_a_short_file_url_key_does_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAI_FILE_URL_KEY", "  ")  # as an empty line of an env file
    assert ApiSettings().file_url_key is None
    with pytest.raises(ValidationError, match="RELAI_FILE_URL_KEY must be at least 32"):
        ApiSettings(file_url_key="k" * 31)
    settings = ApiSettings(file_url_key="k" * 32, upload_max_bytes=5, max_body_bytes=7)
    assert settings.multipart_max_bytes == 12


def test_file_urls_are_signed_for_one_file_until_they_expire() -> None:
    urls = FileUrls(b"k" * 32, ttl_s=60)
    url, expires_at = urls.sign("file-a", now=1000)
    assert url.startswith("/files/file-a/content?expires=1060&signature=")
    assert expires_at.timestamp() == 1060
    signature = url.rsplit("=", 1)[1]
    assert urls.verify("file-a", 1060, signature, now=1059)
    assert not urls.verify("file-a", 1060, signature, now=1061)
    assert not urls.verify("file-b", 1060, signature, now=1000)
    assert not urls.verify("file-a", 1061, signature, now=1000)
    assert not FileUrls(b"j" * 32, ttl_s=60).verify("file-a", 1060, signature, now=1000)
    assert not urls.verify("file-a", 1060, "ünicode", now=1000)
