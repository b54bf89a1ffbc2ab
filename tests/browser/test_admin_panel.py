"""The admin panel in Chromium against the real processes: no panel for a non-admin, users and
keys, an offer's price edited (and the console showing the new price), the admin API's 422 for
an invalid entry, model versions added, made the default and disabled (and the refusal to
disable the one an offer routes to), central configs without their secrets, dead letters, stuck
requests and usage."""

from typing import Any

import orjson
import pytest
from cryptography.fernet import Fernet, MultiFernet
from playwright.async_api import Browser, Page

from libs import config
from libs.config.postgres import PostgresConfigStore
from libs.contracts import DEAD_LETTERS_STREAM
from libs.contracts.streams import MESSAGE_FIELD
from tests.browser.conftest import (
    VIEWPORT,
    UiStack,
    counted_in_usage,
    screenshot,
    sign_in,
    until,
)

pytestmark = pytest.mark.browser

SECRET = "sk-never-on-a-page"


async def test_a_non_admin_gets_no_panel(ui_stack: UiStack, page: Page) -> None:
    admin_calls: list[int] = []
    page.on(
        "response",
        lambda r: admin_calls.append(r.status) if "/admin/users" in r.url else None,
    )
    await sign_in(page, f"{ui_stack.url}/admin/ui", ui_stack.user.api_key)
    denied = page.locator("#denied")
    await denied.wait_for()
    assert "403 forbidden: this needs the admin role" in (await denied.text_content() or "")
    assert admin_calls == [403]
    assert await page.locator("nav a").count() == 0
    assert await page.locator("table").count() == 0


async def test_an_admin_edits_a_price_and_the_console_shows_it(
    ui_stack: UiStack, page: Page, browser: Browser
) -> None:
    await sign_in(page, f"{ui_stack.url}/admin/ui", ui_stack.admin.api_key)
    await page.wait_for_selector('#users tr[data-user="ada"]')
    await screenshot(page, "admin-users")

    await page.click('nav a[data-page="catalog"]')
    row = page.locator('#catalog-offers tr[data-entry="demo/echo"]')
    await row.locator("button.edit").click()
    entry = orjson.loads(await page.input_value("#entry-json"))
    assert entry["price"] == 1

    # The admin API's own rule, in its words: nothing is written.
    await page.fill("#entry-json", orjson.dumps({**entry, "handler": "no.such"}).decode())
    await page.click("#save")
    error = page.locator("#editor-out .error")
    await error.wait_for()
    assert (await error.text_content() or "").startswith("422 invalid_inputs: ")

    await page.fill(
        "#entry-json", orjson.dumps({**entry, "price": 7}, option=orjson.OPT_INDENT_2).decode()
    )
    await page.click("#save")
    await until(
        page,
        "() => document.querySelector('#catalog-offers tr[data-entry=\"demo/echo\"]')"
        "?.textContent.includes('7 credits')",
    )
    await screenshot(page, "admin-catalog")

    console = await browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    try:
        user_page = await console.new_page()
        await sign_in(user_page, f"{ui_stack.url}/console", ui_stack.user.api_key)
        price = user_page.locator('form[data-offer="demo/echo"] .offer-price')
        for _ in range(40):  # each API process reloads the catalog within half a second here
            await price.wait_for()
            if await price.text_content() == "7 credits":
                break
            await user_page.wait_for_timeout(250)
            await user_page.reload()
        assert await price.text_content() == "7 credits"
    finally:
        await console.close()


async def _new_entry(page: Page, kind: str, key: str, entry: dict[str, Any]) -> None:
    """Open the catalog's editor for a new ``kind`` entry, save ``entry`` as its JSON and wait
    until it is listed as ``key``."""
    section = page.locator("section.catalog-kind", has=page.locator(f"#catalog-{kind}"))
    await section.get_by_role("button", name="New").click()
    await page.fill("#entry-json", orjson.dumps(entry).decode())
    await page.click("#save")
    await page.locator(f'#catalog-{kind} tr[data-entry="{key}"]').wait_for()


async def test_model_versions_are_added_made_default_and_disabled(
    ui_stack: UiStack, page: Page
) -> None:
    model = {
        "name": "tiny",
        "version": "2024-01",
        "default": True,
        "handler": "echo.text",
        "context_window": 4096,
        "max_output_tokens": 512,
        "deployments": [{"integration": "box_a", "weight": 3, "max_concurrency": 8}],
    }
    await sign_in(page, f"{ui_stack.url}/admin/ui#catalog", ui_stack.admin.api_key)
    await page.wait_for_selector("#catalog-models")
    await _new_entry(page, "models", "tiny@2024-01", model)
    first = page.locator('#catalog-models tr[data-entry="tiny@2024-01"]')
    cells = await first.locator("td").all_text_contents()
    assert cells[:7] == ["tiny", "2024-01", "default", "echo.text", "4096", "512", "box_a ×3 (8)"]

    second = {**model, "version": "2024-06", "default": False, "context_window": 8192}
    second["deployments"] = [{"integration": "box_a"}, {"integration": "box_b", "weight": 2}]
    await _new_entry(page, "models", "tiny@2024-06", second)
    row = page.locator('#catalog-models tr[data-entry="tiny@2024-06"]')
    assert "box_a ×1, box_b ×2" in (await row.text_content() or "")
    await row.get_by_role("button", name="Make default").click()
    await first.get_by_role("button", name="Make default").wait_for()
    defaults = await ui_stack.pool.fetch(
        "SELECT version FROM models WHERE name = 'tiny' AND is_default AND enabled"
    )
    assert [r["version"] for r in defaults] == ["2024-06"]

    offer = {
        "service": "models",
        "action": "tiny",
        "price": 1,
        "prompt_template": "{text}",
        "handler": "echo.text",
        "model": "tiny",
    }
    await _new_entry(page, "offers", "models/tiny", offer)
    listed = page.locator('#catalog-offers tr[data-entry="models/tiny"]')
    assert "model tiny" in (await listed.text_content() or "")

    # The offer routes to the default: disabling it is refused, in the admin API's words.
    await row.get_by_role("button", name="Disable").click()
    error = page.locator("#catalog-models-out .error")
    await error.wait_for()
    words = await error.text_content() or ""
    assert words.startswith("422 invalid_inputs: offer models/tiny would have no enabled version")

    await first.get_by_role("button", name="Disable").click()
    await first.get_by_role("button", name="Enable").wait_for()
    enabled = await ui_stack.pool.fetch(
        "SELECT version FROM models WHERE name = 'tiny' AND enabled ORDER BY version"
    )
    assert [r["version"] for r in enabled] == ["2024-06"]
    await page.locator("#catalog-models").scroll_into_view_if_needed()
    await screenshot(page, "admin-models")

    async with ui_stack.client(ui_stack.admin) as client:  # the console tests list the offers
        r = await client.post("/admin/offers/models/tiny/disable")
        assert r.status_code == 204, r.text


async def test_users_are_created_granted_and_their_keys_rotated_and_revoked(
    ui_stack: UiStack, page: Page
) -> None:
    await sign_in(page, f"{ui_stack.url}/admin/ui", ui_stack.admin.api_key)
    await page.wait_for_selector("#users")
    await page.fill("#new-name", "grace")
    await page.fill("#new-credits", "5")
    await page.click("form.inline button[type=submit]")
    key = await page.locator(".new-key").text_content()
    assert key
    assert key.startswith("rk_")
    row = page.locator('#users tr[data-user="grace"]')
    await row.wait_for()
    await row.locator("input[type=number]").fill("20")
    await row.get_by_role("button", name="Grant").click()
    await until(
        page,
        "() => document.querySelector('#users tr[data-user=\"grace\"] .balance')"
        "?.textContent === '25'",
    )
    ledger = await ui_stack.pool.fetch(
        "SELECT kind, amount FROM credit_ledger l JOIN users u ON u.id = l.user_id "
        "WHERE u.name = 'grace' ORDER BY l.id"
    )
    assert [(r["kind"], r["amount"]) for r in ledger] == [("grant", 5), ("grant", 20)]

    await page.locator('#users tr[data-user="grace"]').get_by_role("button", name="Keys").click()
    keys = page.locator("#keys-grace")
    await keys.wait_for()
    await keys.get_by_role("button", name="Rotate").click()
    await until(page, "() => document.querySelectorAll('.new-key').length === 2")
    rotated = await page.locator(".new-key").nth(1).text_content()
    assert rotated
    assert rotated != key
    page.on("dialog", lambda dialog: dialog.accept())
    live = page.locator("#keys-grace").get_by_role("button", name="Revoke")
    await live.click()
    await until(page, "() => !document.querySelector('#keys-grace button.danger')")
    async with ui_stack.client(ui_stack.admin) as client:
        listed = (await client.get("/admin/users/grace/keys")).json()
    assert all(k["revoked_at"] for k in listed)


async def test_configs_are_shown_without_their_secrets(ui_stack: UiStack, page: Page) -> None:
    store = PostgresConfigStore(ui_stack.pool, database_url="unused: no watch here")
    fernet = MultiFernet([Fernet(ui_stack.config_key)])
    worker = "integrations:\n  openai:\n    base_url: https://api.openai.com/v1\n"
    for api_key in (SECRET, "sk-the-next-one"):
        await config.upload(
            store,
            "worker",
            worker + f"    ~api_key: {api_key}\n",
            fernet=fernet,
            environ={},
            author="ops",
        )
    await store.activate("worker", "1", author="ops")

    await sign_in(page, f"{ui_stack.url}/admin/ui#configs", ui_stack.admin.api_key)
    await page.click('nav a[data-page="configs"]')
    await page.locator("#configs").get_by_role("button", name="Versions").click()
    versions = page.locator("#config-versions")
    await versions.wait_for()
    await versions.get_by_role("button", name="Show").first.click()
    output = page.locator("#config-output")
    await until(page, "() => document.getElementById('config-output').textContent.includes('***')")
    assert SECRET not in (await output.text_content() or "")
    await page.check('input[name=old][value="1"]')
    await page.check('input[name=new][value="2"]')
    await page.get_by_role("button", name="Diff old → new").click()
    await until(
        page, "() => document.getElementById('config-output').textContent.includes('(changed)')"
    )
    await versions.get_by_role("button", name="Activate").click()
    await until(
        page,
        "() => [...document.querySelectorAll('#config-versions tr')]"
        ".some(r => r.textContent.startsWith('2') && r.textContent.includes('active'))",
    )
    assert (await store.get("worker")).version == "2"
    assert SECRET not in await page.content()
    await screenshot(page, "admin-configs")


async def test_dead_letters_stuck_requests_and_usage(ui_stack: UiStack, page: Page) -> None:
    task = {
        "v": 1,
        "request_id": "00000000-0000-0000-0000-000000000001",
        "attempt": 3,
        "handler": "echo.text",
        "prompt": "private words",
        "params": {},
    }
    await ui_stack.redis.xadd(
        DEAD_LETTERS_STREAM,
        {
            MESSAGE_FIELD: orjson.dumps(task),
            b"deliveries": b"4",
            b"crashes": b"3",
            b"reason": b"the job was delivered 4 times and never finished",
        },
    )
    await sign_in(page, f"{ui_stack.url}/admin/ui", ui_stack.admin.api_key)
    await page.wait_for_selector("#users")
    await page.click('nav a[data-page="dead-letters"]')
    row = page.locator("#dead-letters tbody tr").first
    await row.wait_for()
    assert "echo.text" in (await row.text_content() or "")
    await row.get_by_role("button", name="Inspect").click()
    assert "never finished" in (await page.text_content("#dead-letters") or "")
    assert "private words" not in await page.content()
    await screenshot(page, "admin-dead-letters")

    await page.click('nav a[data-page="stuck"]')
    await page.fill("#idle", "0")
    await page.get_by_role("button", name="Refresh").click()
    await page.wait_for_selector("#stuck")

    await counted_in_usage(ui_stack)
    await page.click('nav a[data-page="usage"]')
    await page.wait_for_selector("#admin-usage")
    await page.select_option("#usage-by", "offer")
    await page.get_by_role("button", name="Show").click()
    await until(page, "() => document.getElementById('admin-usage')?.textContent.includes('demo/')")
    await screenshot(page, "admin-usage")
