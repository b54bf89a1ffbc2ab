"""The console and the admin panel in a real headless Chromium (Debian's ``chromium``, driven
by Playwright's Python package over CDP, no browser download), against the real processes:
``relai-api``, a ``relai-worker`` and ``relai-recon`` (whose hourly usage the console charts).
One stack and one browser serve a whole module; each test opens its own browser context (its
own ``sessionStorage``). The tests save a screenshot of each main page under
``docs/screenshots/``, so that the documentation shows the pages as they are.

Without ``/usr/bin/chromium`` the tests are skipped, unless ``RELAI_REQUIRE_CHROMIUM`` is set
(CI sets it, after installing it): then they fail."""

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.catalog import apply_catalog
from services.cli.catalog import read_catalog
from services.cli.launcher import ChildSpec, Supervisor, console_script, wait_until_healthy
from tests.conftest import TABLES
from tests.integration.api.conftest import free_port
from tests.support import ServerUrls, create_user

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
"""Where ``make screenshots`` (``RELAI_SCREENSHOTS=1``) keeps the pages' pictures for the docs;
other runs take them all the same, into the run's own directory, so that the tree stays clean."""
CHROMIUM = os.environ.get("RELAI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 860}
WORKER_SLOTS = 4
"""Jobs the one worker runs at once: few, so that a test can keep a request pending."""
SLOW_MS = 20_000
"""How long ``demo/slow`` takes here (the catalog's one second is too short to click)."""


@dataclass
class UiStack:
    url: str
    user: NewUser
    """A user with credits (the console's)."""
    admin: NewUser
    pool: "asyncpg.Pool[Any]"
    redis: Redis
    config_key: str
    """The Fernet key of the API's bootstrap config (``RELAI_CONFIG_KEY``)."""

    def client(self, user: NewUser) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {user.api_key}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)


def chromium_or_skip() -> str:
    if Path(CHROMIUM).is_file() or shutil.which(CHROMIUM):
        return CHROMIUM
    message = f"{CHROMIUM} is not installed (apt-get install chromium)"
    if os.environ.get("RELAI_REQUIRE_CHROMIUM"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="package")
async def ui_stack(
    server_urls: ServerUrls,
    _session_pool: "asyncpg.Pool[Any]",
    _session_redis: Redis,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[UiStack]:
    chromium_or_skip()
    pool, redis = _session_pool, _session_redis
    await pool.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    await redis.flushdb()
    demo = read_catalog(ROOT / "catalog" / "demo.yaml")
    # demo/slow long enough that a click on "Cancel" always comes while it runs.
    offers = [
        o.model_copy(update={"params": {**o.params, "delay_ms": SLOW_MS}})
        if (o.service, o.action) == ("demo", "slow")
        else o
        for o in demo.offers
    ]
    demo = demo.model_copy(update={"offers": offers})
    async with pool.acquire() as conn:
        await apply_catalog(conn, demo)
    user = await create_user(pool, name="ada", credits=1_000)
    admin = await create_user(pool, name="root", credits=0, role="admin")
    key = Fernet.generate_key().decode()
    port, recon_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": server_urls.database_url,
        "REDIS_URL": server_urls.redis_url,
        "RELAI_BLOB_URL": str(tmp_path_factory.mktemp("ui-blobs")),
        "RELAI_LOG_LEVEL": "WARNING",
        "RELAI_CONFIG_KEY": key,
        "RELAI_WORKER_METRICS_PORT": "0",
        "RELAI_WORKER_CONCURRENCY": str(WORKER_SLOTS),
        "RELAI_RECON_METRICS_PORT": "0",
        "RELAI_API_METRICS_PORT": "0",
        "RELAI_CATALOG_REFRESH_S": "0.5",
        "RELAI_RECON_USAGE_INTERVAL_S": "1",
        "RELAI_RECON_USAGE_LAG_S": "0",
    }
    config = str(ROOT / "config" / "api.bootstrap.yaml")
    specs = [
        ChildSpec(
            "relai-api",
            [console_script("relai-api"), "--port", str(port)],
            {"RELAI_CONFIG_FILE": config},
        ),
        ChildSpec("relai-worker", [console_script("relai-worker")]),
        ChildSpec(
            "relai-recon", [console_script("relai-recon")], {"RELAI_RECON_PORT": str(recon_port)}
        ),
    ]
    supervisor = Supervisor(env=env, stop_timeout=15)
    for spec in specs:
        supervisor.start(spec)
    url = f"http://127.0.0.1:{port}"
    try:
        for health in (f"{url}/health", f"http://127.0.0.1:{recon_port}/health"):
            await asyncio.to_thread(
                wait_until_healthy, health, timeout=90, exited=supervisor.exited
            )
        yield UiStack(url, user, admin, pool, redis, key)
    finally:
        await asyncio.to_thread(supervisor.stop)


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_or_skip()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh profile: its own sessionStorage and localStorage. Every console message that is
    an error (a script error, a CSP violation) fails the test."""
    made = await browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    made.set_default_timeout(15_000)
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    opened = await context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type == "error" and "Failed to load resource" not in message.text
            else None
        ),
    )
    yield opened
    assert not problems, problems


async def screenshot(page: Page, name: str) -> None:
    if os.environ.get("RELAI_SCREENSHOTS") == "1":
        folder = SCREENSHOTS
    else:
        folder = Path(tempfile.gettempdir()) / f"relai-screenshots-{os.getpid()}"
        assert (SCREENSHOTS / f"{name}.png").is_file(), f"docs/screenshots/{name}.png is missing"
    folder.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=False)


async def sign_in(page: Page, url: str, key: str) -> None:
    await page.goto(url)
    await page.fill("#credential", key)
    await page.click("button[type=submit]")


async def until(page: Page, expression: str, *, timeout_s: float = 15.0) -> Any:
    """Wait until ``expression`` (a JS arrow function) is truthy in the page, polling from
    here: Playwright's own ``wait_for_function`` evaluates text in the page, which the pages'
    policy (no ``unsafe-eval``) forbids, as it should."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never true in the page: {expression}")
        await asyncio.sleep(0.05)


async def counted_in_usage(stack: UiStack) -> None:
    """Submit a request and wait until recon has counted it in the hourly usage."""
    async with stack.client(stack.user) as client:
        r = await client.post("/svc/demo/echo", json={"text": f"counted {uuid.uuid4()}"})
        assert r.status_code == 202, r.text
        request_id = r.json()["id"]
        for _ in range(150):  # recon folds usage in every second here
            view = (await client.get(f"/svc/request/{request_id}")).json()
            if view["status"] == "succeeded" and (await client.get("/me/usage")).json():
                return
            await asyncio.sleep(0.2)
    raise AssertionError("recon never counted the request in the usage")
