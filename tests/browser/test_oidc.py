"""The console's OIDC sign-in in Chromium: the authorization code flow with PKCE against a fake
issuer on this host (its discovery document, a redirect back with a code, the token endpoint
called from the page, cross-origin, which the page's CSP allows), then the API's own token
check. The API runs in this process, configured for that issuer; the console's token stays in
sessionStorage and the code leaves the address bar."""

import uuid

import pytest
from playwright.async_api import Page

from libs import accounts
from services.api.settings import ApiSettings
from tests.browser.conftest import UiStack, until
from tests.fakes.oidc import fake_issuer
from tests.integration.api.conftest import serving
from tests.support import ServerUrls

pytestmark = pytest.mark.browser

CLIENT_ID = "relai-console"


async def test_the_console_signs_in_with_the_issuer(
    ui_stack: UiStack, server_urls: ServerUrls, page: Page
) -> None:
    subject = f"user-{uuid.uuid4().hex[:8]}"
    name = f"oidc-{subject}"
    async with ui_stack.pool.acquire() as conn, conn.transaction():
        await accounts.create_user(conn, name=name, credits=3)
    async with fake_issuer(client_id=CLIENT_ID, subject=subject) as issuer:
        async with ui_stack.pool.acquire() as conn, conn.transaction():
            await accounts.link_identity(conn, user=name, issuer=issuer.url, subject=subject)
        settings = ApiSettings(
            database_url=server_urls.database_url,
            redis_url=server_urls.redis_url,
            oidc_issuer=issuer.url,
            oidc_jwks_url=f"{issuer.url}/jwks",
            oidc_audience="relai",
            oidc_client_id=CLIENT_ID,
        )
        async with serving(settings) as api:
            response = await page.goto(f"{api.url}/console")
            assert response is not None
            assert issuer.url in response.headers["content-security-policy"]
            button = page.get_by_role("button", name="Sign in with 127.0.0.1")
            await button.click()
            await page.wait_for_selector("#me")
            assert name in (await page.text_content("#me") or "")
            assert "code=" not in page.url
            assert "state=" not in page.url
            token = await page.evaluate("sessionStorage.getItem('relai.credential')")
            assert token.startswith("eyJ")
            assert await page.evaluate("localStorage.length") == 0
            [grant] = issuer.exchanged
            assert grant.redirect_uri == f"{api.url}/console"
            assert grant.audience == "relai"
            await until(page, "() => document.querySelector('form[data-offer]')")


async def test_without_a_client_id_the_console_offers_keys_only(
    ui_stack: UiStack, page: Page
) -> None:
    await page.goto(f"{ui_stack.url}/console")
    await page.wait_for_selector("#credential")
    assert await page.get_by_role("button", name="Sign in with").count() == 0
