"""Prometheus and Alertmanager as the tests run them: the machine's own binaries (Debian's
``prometheus``, ``promtool``, ``prometheus-alertmanager`` and ``amtool``), each process on free
ports with its files in a directory of the test, fed configs derived from the shipped ones in
``deploy/``; and a local receiver of Discord webhook messages.

A missing binary skips the test, unless ``RELAI_REQUIRE_PROMTOOL`` (or ``CI``) is set: CI installs
them (``.ci/run``), so there their absence fails."""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from tests.integration.api.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS_YML = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST_YML = DEPLOY / "prometheus" / "alerts.test.yml"
ALERTMANAGER_YML = DEPLOY / "alertmanager" / "alertmanager.yml"
DISCORD_URL_PLACEHOLDER = "https://discord.invalid/set-RELAI_ALERT_WEBHOOK_URL"
"""The webhook URL the shipped Alertmanager config holds until its start replaces it."""


INSTALL = "Debian: apt-get install prometheus prometheus-alertmanager"


def required() -> bool:
    return bool(os.environ.get("RELAI_REQUIRE_PROMTOOL") or os.environ.get("CI"))


def tool(*names: str) -> str:
    """The first of ``names`` on PATH; else the test is skipped, or fails where required."""
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    why = f"{' or '.join(names)} is not on PATH ({INSTALL})"
    if required():
        pytest.fail(why)
    pytest.skip(why)


def run_tool(argv: Sequence[str], *, cwd: Path | None = None) -> str:
    """Run a check; its output, or a failure with it."""
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False, cwd=cwd)
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


# Configs derived from the shipped ones


def load_yaml(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def prometheus_config(
    targets: Mapping[str, Sequence[str]],
    *,
    rule_files: Sequence[Path],
    alertmanager: str | None = None,
    interval: str = "1s",
) -> dict[str, Any]:
    """The shipped ``prometheus.yml`` with its jobs' discovery replaced by ``targets`` (host:port
    by job name, each job of the shipped file), its rule files by ``rule_files``, its
    Alertmanager by ``alertmanager`` (host:port), and every interval ``interval``."""
    shipped = load_yaml(PROMETHEUS_YML)
    config = copy.deepcopy(shipped)
    config["global"] |= {"scrape_interval": interval, "evaluation_interval": interval}
    config["rule_files"] = [str(path) for path in rule_files]
    jobs = []
    for job in shipped["scrape_configs"]:
        job = {key: value for key, value in job.items() if not key.endswith("_sd_configs")}
        job["static_configs"] = [{"targets": list(targets[job["job_name"]])}]
        jobs.append(job)
    assert {job["job_name"] for job in jobs} == set(targets), "a job of the shipped config"
    config["scrape_configs"] = jobs
    (managers,) = config["alerting"]["alertmanagers"]
    if alertmanager is None:
        del config["alerting"]
    else:
        managers.pop("dns_sd_configs", None)
        managers["static_configs"] = [{"targets": [alertmanager]}]
    return config


def alert_rules(durations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The shipped alert rules, the ``for:`` of the alerts named in ``durations`` changed."""
    rules = load_yaml(ALERTS_YML)
    left = dict(durations or {})
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule["alert"] in left:
                rule["for"] = left.pop(rule["alert"])
    assert not left, f"no such alert: {left}"
    return rules


def alertmanager_config(
    webhook_url: str, *, group_wait: str = "1s", group_interval: str = "1s"
) -> str:
    """The shipped Alertmanager config with the Discord webhook URL replaced (as compose's start
    replaces it) and its grouping made quick; routing and inhibition as shipped."""
    text = ALERTMANAGER_YML.read_text()
    assert text.count(DISCORD_URL_PLACEHOLDER) == 1
    config = yaml.safe_load(text.replace(DISCORD_URL_PLACEHOLDER, webhook_url))
    config["route"] |= {"group_wait": group_wait, "group_interval": group_interval}
    for route in config["route"].get("routes", []):
        route.pop("group_wait", None)
        route.pop("group_interval", None)
    return str(yaml.safe_dump(config, sort_keys=False))


# The processes


class ProcessFailed(AssertionError):
    pass


@contextmanager
def _process(argv: Sequence[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(argv), stdout=out, stderr=subprocess.STDOUT, process_group=0
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


async def _ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if process.poll() is not None:
                raise ProcessFailed(f"exited {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise ProcessFailed(f"{url} not ready in {timeout}s:\n{log.read_text()[-3000:]}")
            await asyncio.sleep(0.1)


class QueryError(AssertionError):
    pass


@dataclass
class Prometheus:
    url: str
    client: httpx.AsyncClient
    log: Path

    async def query(self, expr: str) -> dict[str, Any]:
        """An instant query's ``data`` (``resultType``, ``result``); an error raises."""
        r = await self.client.get(f"{self.url}/api/v1/query", params={"query": expr})
        body = r.json()
        if r.status_code != 200 or body.get("status") != "success":
            raise QueryError(f"{expr!r}: {r.status_code} {body.get('error', body)}")
        data: dict[str, Any] = body["data"]
        return data

    async def names(self) -> set[str]:
        """Every metric name Prometheus holds series of."""
        r = await self.client.get(f"{self.url}/api/v1/label/__name__/values")
        r.raise_for_status()
        return set(r.json()["data"])

    async def targets_up(self) -> dict[str, list[str]]:
        """The health of each active target, by job."""
        r = await self.client.get(f"{self.url}/api/v1/targets", params={"state": "active"})
        r.raise_for_status()
        health: dict[str, list[str]] = {}
        for target in r.json()["data"]["activeTargets"]:
            health.setdefault(target["labels"]["job"], []).append(target["health"])
        return health

    async def rule_health(self) -> dict[str, str]:
        """Each rule's health (``ok``, ``err``, ``unknown``) at its last evaluation, by name."""
        r = await self.client.get(f"{self.url}/api/v1/rules")
        r.raise_for_status()
        groups = r.json()["data"]["groups"]
        return {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}

    async def alerts(self) -> list[dict[str, Any]]:
        r = await self.client.get(f"{self.url}/api/v1/alerts")
        r.raise_for_status()
        found: list[dict[str, Any]] = r.json()["data"]["alerts"]
        return found


@asynccontextmanager
async def prometheus(config: dict[str, Any], workdir: Path) -> AsyncIterator[Prometheus]:
    """Debian's ``prometheus`` with ``config``, its storage in ``workdir``."""
    binary = tool("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    argv = [
        binary,
        f"--config.file={path}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    log = workdir / "prometheus.log"
    url = f"http://127.0.0.1:{port}"
    with _process(argv, log) as process:
        await _ready(f"{url}/-/ready", process, log, timeout=30)
        async with httpx.AsyncClient(timeout=10) as client:
            yield Prometheus(url, client, log)


@dataclass
class Alertmanager:
    url: str
    client: httpx.AsyncClient
    log: Path

    async def alerts(self) -> list[dict[str, Any]]:
        r = await self.client.get(f"{self.url}/api/v2/alerts")
        r.raise_for_status()
        found: list[dict[str, Any]] = r.json()
        return found


@asynccontextmanager
async def alertmanager(config: str, workdir: Path) -> AsyncIterator[Alertmanager]:
    """Debian's Alertmanager with ``config``, alone (no cluster), its data in ``workdir``."""
    binary = tool("prometheus-alertmanager", "alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "alertmanager.yml"
    path.write_text(config)
    port = free_port()
    argv = [
        binary,
        f"--config.file={path}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    log = workdir / "alertmanager.log"
    url = f"http://127.0.0.1:{port}"
    with _process(argv, log) as process:
        await _ready(f"{url}/-/ready", process, log, timeout=30)
        async with httpx.AsyncClient(timeout=10) as client:
            yield Alertmanager(url, client, log)


# Discord


def discord_message_problems(body: Any) -> list[str]:
    """What Discord would refuse in a webhook message (its documented limits): one of
    ``content`` and ``embeds``, content at most 2000 characters, at most 10 embeds, each with a
    title of at most 256 and a description of at most 4096 characters, a colour that is an RGB
    integer, and at most 6000 characters of embed text in all."""
    if not isinstance(body, dict):
        return ["not an object"]
    problems = []
    content, embeds = body.get("content"), body.get("embeds") or []
    if not content and not embeds:
        problems.append("neither content nor embeds")
    if content is not None and (not isinstance(content, str) or len(content) > 2000):
        problems.append("content not a string of at most 2000 characters")
    if not isinstance(embeds, list) or len(embeds) > 10:
        return [*problems, "embeds not a list of at most 10"]
    total = 0
    for embed in embeds:
        title, description = embed.get("title", ""), embed.get("description", "")
        if not isinstance(title, str) or len(title) > 256:
            problems.append("an embed's title is not a string of at most 256 characters")
        if not isinstance(description, str) or len(description) > 4096:
            problems.append("an embed's description is not a string of at most 4096 characters")
        color = embed.get("color", 0)
        if not isinstance(color, int) or not 0 <= color <= 0xFFFFFF:
            problems.append("an embed's color is not an RGB integer")
        total += len(str(title)) + len(str(description))
    if total > 6000:
        problems.append("more than 6000 characters of embeds")
    return problems


@dataclass
class DiscordReceiver:
    url: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    async def wait_for(
        self, what: str, found: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        """The first message (of those received so far or to come) for which ``found`` holds."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for message in self.messages:
                        if found(message):
                            return message
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(f"no message {what} within {timeout}s: {self.messages}") from None


@asynccontextmanager
async def discord_receiver() -> AsyncIterator[DiscordReceiver]:
    """A local stand-in for a Discord webhook: keeps each message, refuses (400) what Discord
    would refuse, and answers 204 as Discord does."""
    box = DiscordReceiver(url="")

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        problems = discord_message_problems(body)
        if problems:
            return web.json_response({"problems": problems}, status=400)
        box.messages.append(body)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/api/webhooks/{id}/{token}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    box.url = f"http://127.0.0.1:{port}/api/webhooks/1/test-token"
    try:
        yield box
    finally:
        await runner.cleanup()


def embed_text(message: dict[str, Any]) -> str:
    """A message's content and embeds' titles and descriptions, as one text."""
    parts = [message.get("content") or ""]
    for embed in message.get("embeds") or []:
        parts += [embed.get("title", ""), embed.get("description", "")]
    return "\n".join(part for part in parts if part)


# The queries of the dashboards and of the alert rules
