"""The user console in Chromium against the real processes: signing in with an API key kept in
sessionStorage only, an offer's form, a request watched live (its streamed text appearing
before it ends, without a reload), a cancel, a file result, the history paged, the credits and
the usage chart, and the API's own words for an error."""

import asyncio
import io
from typing import Any

import pytest
from PIL import Image
from playwright.async_api import FilePayload, Page, Request, WebSocket

from tests.browser.conftest import (
    WORKER_SLOTS,
    UiStack,
    counted_in_usage,
    screenshot,
    sign_in,
    until,
)
from tests.support import create_user

pytestmark = pytest.mark.browser

WORDS = " ".join(f"word{n}" for n in range(40))
"""40 words, 50 ms apart: two seconds of streaming."""


async def test_a_request_is_submitted_and_watched_live(ui_stack: UiStack, page: Page) -> None:
    key = ui_stack.user.api_key
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    sockets: list[WebSocket] = []
    page.on("websocket", lambda socket: sockets.append(socket))

    await page.goto(f"{ui_stack.url}/console")
    await screenshot(page, "console-sign-in")
    await sign_in(page, f"{ui_stack.url}/console", key)
    form = page.locator('form[data-offer="demo/stream"]')
    await form.wait_for()
    await page.wait_for_selector("#balance")
    await screenshot(page, "console-offers")

    await page.evaluate("window.sameDocument = true")
    await form.locator("textarea[name=text]").fill(WORDS)
    await form.locator("button[type=submit]").click()
    # Part of the text is on the page while the request still runs: it arrives as it streams.
    await until(
        page,
        "() => document.getElementById('stream')?.textContent.includes('word')"
        " && document.getElementById('status').textContent !== 'succeeded'",
    )
    await until(page, "() => document.getElementById('status').textContent === 'succeeded'")
    assert await page.text_content("#stream") == WORDS
    assert await page.text_content(".result") == WORDS
    assert await page.evaluate("window.sameDocument") is True  # never reloaded
    assert "#request/" in page.url
    await screenshot(page, "console-request")

    # The key: in this tab's sessionStorage, never in a URL (page, call or socket), never in
    # localStorage.
    assert await page.evaluate("sessionStorage.getItem('relai.credential')") == key
    assert await page.evaluate("localStorage.length") == 0
    assert sockets, "the request was not watched over a WebSocket"
    for url in [*urls, *(s.url for s in sockets), page.url]:
        assert key not in url
        assert key[3:20] not in url


async def test_a_slow_request_is_cancelled_and_refunded(ui_stack: UiStack, page: Page) -> None:
    await sign_in(page, f"{ui_stack.url}/console", ui_stack.user.api_key)
    form = page.locator('form[data-offer="demo/slow"]')
    await form.locator("textarea[name=text]").fill("take your time")
    await form.locator("button[type=submit]").click()
    await until(
        page,
        "() => ['pending', 'running'].includes(document.getElementById('status')?.textContent)",
    )
    await page.click("#cancel")
    await until(page, "() => document.getElementById('status').textContent === 'cancelled'")
    await page.get_by_text("credits refunded").wait_for()
    request_id = page.url.rsplit("/", 1)[1]
    async with ui_stack.client(ui_stack.user) as client:
        view = (await client.get(f"/svc/request/{request_id}")).json()
    assert view["status"] == "cancelled"


async def test_a_waiting_request_shows_its_place_in_the_queue(
    ui_stack: UiStack, page: Page
) -> None:
    async with ui_stack.client(ui_stack.user) as client:
        busy = []
        for n in range(WORKER_SLOTS):  # every slot of the one worker taken
            r = await client.post("/svc/demo/slow", json={"text": f"busy {n}"})
            busy.append(r.json()["id"])
        for request_id in busy:
            for _ in range(100):
                if (await client.get(f"/svc/request/{request_id}")).json()["status"] == "running":
                    break
                await asyncio.sleep(0.1)
        try:
            await sign_in(page, f"{ui_stack.url}/console", ui_stack.user.api_key)
            form = page.locator('form[data-offer="demo/slow"]')
            await form.locator("textarea[name=text]").fill("waiting my turn")
            await form.locator("button[type=submit]").click()
            await until(page, "() => document.getElementById('queue')?.textContent")
            # ", about N s to go" follows once some of the user's requests ended lately.
            assert (await page.text_content("#queue") or "").startswith("queue position 1")
            assert await page.text_content("#status") == "pending"
            await page.click("#cancel")
            await until(page, "() => document.getElementById('status').textContent === 'cancelled'")
            assert await page.text_content("#queue") == ""
        finally:
            for request_id in busy:
                await client.post(f"/svc/request/{request_id}/cancel")


async def test_a_file_result_is_shown_as_a_picture(ui_stack: UiStack, page: Page) -> None:
    await sign_in(page, f"{ui_stack.url}/console", ui_stack.user.api_key)
    form = page.locator('form[data-offer="image/draw"]')
    await form.locator("textarea[name=text]").fill("relai")
    await form.locator("button[type=submit]").click()
    image = page.locator("img.result-image")
    await image.wait_for()
    width = await image.evaluate("img => img.complete && img.naturalWidth")
    assert width
    assert width > 0
    assert (await image.get_attribute("src") or "").startswith("blob:")


async def test_the_history_pages_and_filters(ui_stack: UiStack, page: Page) -> None:
    async with ui_stack.client(ui_stack.user) as client:
        for n in range(12):
            r = await client.post("/svc/demo/echo", json={"text": f"history {n}"})
            assert r.status_code == 202, r.text
    await sign_in(page, f"{ui_stack.url}/console", ui_stack.user.api_key)
    await page.wait_for_selector("#balance")
    await page.click('nav a[data-page="requests"]')
    rows = page.locator("#history tbody tr")
    await until(page, "() => document.querySelectorAll('#history tbody tr').length === 10")
    first_page = await rows.all_text_contents()
    await screenshot(page, "console-history")

    await page.click("#next")
    await until(page, "() => document.getElementById('page').textContent === 'page 2'")
    second_page = await rows.all_text_contents()
    assert second_page
    assert not set(first_page) & set(second_page)
    await page.click("#previous")
    await until(page, "() => document.getElementById('page').textContent === 'page 1'")
    assert await rows.all_text_contents() == first_page

    await page.select_option("#status-filter", "cancelled")
    await until(
        page,
        "() => [...document.querySelectorAll('#history tbody tr')]"
        ".every(r => r.textContent.includes('cancelled'))",
    )


async def test_credits_and_usage(ui_stack: UiStack, page: Page) -> None:
    await counted_in_usage(ui_stack)
    await sign_in(page, f"{ui_stack.url}/console", ui_stack.user.api_key)
    await page.wait_for_selector("#balance")
    await page.click('nav a[data-page="credits"]')
    await page.wait_for_selector("#ledger tbody tr")
    kinds = await page.locator("#ledger tbody tr td:nth-child(2)").all_text_contents()
    assert "settle" in kinds
    await screenshot(page, "console-credits")

    await page.click('nav a[data-page="usage"]')
    await page.wait_for_selector("svg.chart rect.bar", state="attached")
    heights = await page.locator("svg.chart rect.bar").evaluate_all(
        "bars => bars.map(b => Number(b.getAttribute('height')))"
    )
    assert max(heights) > 0
    assert "demo/echo" in (await page.text_content("#usage") or "")
    await screenshot(page, "console-usage")


async def test_errors_are_shown_as_the_api_words_them(ui_stack: UiStack, page: Page) -> None:
    broke = await create_user(ui_stack.pool, name="broke", credits=0)
    await sign_in(page, f"{ui_stack.url}/console", broke.api_key)
    form = page.locator('form[data-offer="demo/echo"]')
    await form.locator("textarea[name=text]").fill("no credits")
    await form.locator("button[type=submit]").click()
    error = form.locator(".error")
    await error.wait_for()
    text = await error.text_content() or ""
    assert text.startswith("402 insufficient_credits: ")

    # A wrong key is refused with the API's own words, and not kept.
    await page.goto(f"{ui_stack.url}/console")
    await page.evaluate("sessionStorage.clear()")
    await sign_in(page, f"{ui_stack.url}/console", "rk_not-a-key")
    await page.locator(".error").wait_for()
    assert "401 unauthorized" in (await page.text_content(".error") or "")
    assert await page.evaluate("sessionStorage.length") == 0


async def test_the_console_page_carries_its_policy(ui_stack: UiStack, page: Page) -> None:
    answers: dict[str, Any] = {}

    def seen(request: Request) -> None:
        answers[request.url] = request

    page.on("request", seen)
    response = await page.goto(f"{ui_stack.url}/console")
    assert response is not None
    headers = response.headers
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    await page.wait_for_selector("#credential")
    assert all(url.startswith(ui_stack.url) or url.startswith("data:") for url in answers)


async def test_a_picture_is_uploaded_from_the_form(ui_stack: UiStack, page: Page) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 40, 40)).save(picture, format="PNG")
    await sign_in(page, f"{ui_stack.url}/console", ui_stack.user.api_key)
    form = page.locator('form[data-offer="image/grayscale"]')
    payload: FilePayload = {
        "name": "red.png",
        "mimeType": "image/png",
        "buffer": picture.getvalue(),
    }
    await form.locator("input[type=file][name=image]").set_input_files(files=[payload])
    await form.locator("button[type=submit]").click()
    await until(page, "() => document.getElementById('status')?.textContent === 'succeeded'")
    image = page.locator("img.result-image")
    await image.wait_for()
    assert await image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [32, 24]
    request_id = page.url.rsplit("/", 1)[1]
    async with ui_stack.client(ui_stack.user) as client:
        view = (await client.get(f"/svc/request/{request_id}")).json()
    assert view["inputs"]["image"]["media_type"] == "image/png"


async def test_a_deal_is_submitted_from_its_form(ui_stack: UiStack, page: Page) -> None:
    await sign_in(page, f"{ui_stack.url}/console", ui_stack.user.api_key)
    await page.wait_for_selector("#balance")
    await page.click('nav a[data-page="deals"]')
    form = page.locator('form[data-deal="echo-twice"]')
    await form.locator("textarea[name=text]").fill("twice over")
    await form.locator("button[type=submit]").click()
    await until(page, "() => document.getElementById('status')?.textContent === 'succeeded'")
    assert await page.locator(".result").all_text_contents() == ["twice over", "twice over"]
