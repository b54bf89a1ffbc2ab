"""The API refuses to start on OIDC settings that would let in tokens it should not."""

import pytest
from pydantic import ValidationError

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
