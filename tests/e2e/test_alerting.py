"""Alerts for real, from the running processes to a Discord webhook: Debian's Prometheus (the
shipped rules, two ``for:`` shortened) and Alertmanager (the shipped config, its grouping made
quick) beside the stack, recon posting its own alerts to the same Alertmanager.

The workers and the dispatcher are killed while work waits. The dispatcher's absence is
Prometheus's alone: its alert reaches the webhook in Discord's shape, then its resolution. No
worker is a cause recon sees too, sooner: recon's alert is sent, Prometheus's, firing later, is
silenced by it, and the cause is announced once, then resolved once."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import Stack
from tests.monitoring import (
    Alertmanager,
    DiscordReceiver,
    Prometheus,
    alert_rules,
    alertmanager,
    alertmanager_config,
    discord_receiver,
    embed_text,
    prometheus,
    prometheus_config,
)

pytestmark = pytest.mark.e2e

RECON_HOLD_S = 6


@pytest.fixture
async def discord() -> AsyncIterator[DiscordReceiver]:
    async with discord_receiver() as receiver:
        yield receiver


@pytest.fixture
async def manager(discord: DiscordReceiver, tmp_path: Path) -> AsyncIterator[Alertmanager]:
    async with alertmanager(alertmanager_config(discord.url), tmp_path / "alertmanager") as am:
        yield am


@pytest.fixture
def stack_recon() -> bool:
    return True


@pytest.fixture
def stack_env(stack_env: dict[str, str], manager: Alertmanager) -> dict[str, str]:
    return {
        **stack_env,
        "RELAI_RECON_ALERTMANAGER_URL": manager.url,
        "RELAI_RECON_ALERT_INTERVAL_S": "1",
        "RELAI_RECON_ALERTMANAGER_HOLD_S": str(RECON_HOLD_S),
    }


def _about(cause: str, status: str) -> Any:
    def found(message: dict[str, Any]) -> bool:
        text = embed_text(message)
        return cause in text and (status == "resolved") == text.startswith("[RESOLVED]")

    return found


def _messages_about(discord: DiscordReceiver, *alertnames: str) -> list[str]:
    texts = [embed_text(m) for m in discord.messages]
    return [t for t in texts if any(name in t for name in alertnames)]


async def _firing_in_prometheus(prom: Prometheus, alertname: str, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not any(
            a["labels"]["alertname"] == alertname and a["state"] == "firing"
            for a in await prom.alerts()
        ):
            await asyncio.sleep(0.2)


async def _suppressed_in_alertmanager(am: Alertmanager, alertname: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            for alert in await am.alerts():
                if alert["labels"]["alertname"] == alertname:
                    if alert["status"]["state"] == "suppressed":
                        return alert
            await asyncio.sleep(0.2)


async def test_an_alert_reaches_discord_and_resolves_and_one_cause_is_announced_once(
    stack: Stack,
    client: httpx.AsyncClient,
    discord: DiscordReceiver,
    manager: Alertmanager,
    tmp_path: Path,
) -> None:
    rules = tmp_path / "alerts.yml"
    # Prometheus's "no worker" waits longer than recon's (10 s without a read), as it does when
    # shipped (2 min); its "no dispatcher" is quick.
    durations = {"RelaiWorkersAbsent": "20s", "RelaiDispatcherDown": "2s"}
    rules.write_text(yaml.safe_dump(alert_rules(durations), sort_keys=False))
    config = prometheus_config(
        stack.metrics_targets,
        rule_files=[rules],
        alertmanager=manager.url.removeprefix("http://"),
    )
    async with prometheus(config, tmp_path / "prometheus") as prom:
        async with asyncio.timeout(20):
            while set(sum((await prom.targets_up()).values(), [])) != {"up"}:
                await asyncio.sleep(0.2)
        workers = [name for name in stack.supervisor.pids if name.startswith("relai-worker")]
        for name in [*workers, "relai-dispatcher"]:
            stack.kill(name)
        waiting = await client.post("/svc/demo/echo", json={"text": "waits"})
        assert waiting.status_code == 202, waiting.text

        dispatcher = await discord.wait_for(
            "about the dispatcher", _about("RelaiDispatcherDown", "firing"), timeout=30
        )
        assert embed_text(dispatcher).startswith("[CRITICAL] No webhook dispatcher is up")
        workers_firing = await discord.wait_for(
            "about the workers", _about("ReconWorkersAbsent", "firing"), timeout=30
        )
        assert embed_text(workers_firing).startswith("[CRITICAL] No live workers")
        # Prometheus sees it too, later: Alertmanager holds its alert back behind recon's.
        await _firing_in_prometheus(prom, "RelaiWorkersAbsent", timeout=30)
        silenced = await _suppressed_in_alertmanager(manager, "RelaiWorkersAbsent")
        assert silenced["labels"]["cause"] == "workers_absent"
        assert silenced["status"]["inhibitedBy"]
        await asyncio.sleep(3)  # a few group intervals: nothing more about the workers
        assert _messages_about(discord, "ReconWorkersAbsent", "RelaiWorkersAbsent") == [
            embed_text(workers_firing)
        ]

        await stack.restart("relai-dispatcher", f"{stack.dispatcher_url}/health")
        for name, target in zip(workers, stack.metrics_targets["relai-worker"], strict=True):
            await stack.restart(name, f"http://{target}/metrics")
        await discord.wait_for(
            "resolving the dispatcher's", _about("RelaiDispatcherDown", "resolved"), timeout=30
        )
        await discord.wait_for(
            "resolving the workers'", _about("ReconWorkersAbsent", "resolved"), timeout=30
        )
    about_workers = _messages_about(discord, "ReconWorkersAbsent", "RelaiWorkersAbsent")
    assert [text.split(" ", 1)[0] for text in about_workers] == ["[CRITICAL]", "[RESOLVED]"]
    assert await _final(client, waiting.json()["id"]) == "succeeded"


async def _final(client: httpx.AsyncClient, request_id: str) -> str:
    async with asyncio.timeout(20):
        while True:
            status: str = (await client.get(f"/svc/request/{request_id}")).json()["status"]
            if status in ("succeeded", "failed"):
                return status
            await asyncio.sleep(0.1)
