"""Each provider handler against the fake provider's rendition of its wire format: success and
usage, 429 with Retry-After, 500 then success, malformed body, timeout, hang, permanent errors."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from libs.config import Integration
from libs.security.ssrf import UrlPolicy
from services.worker.config import with_integration
from services.worker.handlers import build_registry
from services.worker.job import HandlerError, Job, JobContext
from services.worker.providers import ProviderHttp
from tests.fakes.provider import FakeProvider, Reply, fake_provider
from tests.integration.worker.helpers import FAST, add_tasks, finals, running, task, wait_finals

KEY = "sk-test-secret-key-0123456789"
FAST_RETRIES = {"backoff_s": 0.01, "backoff_max_s": 0.05}


@dataclass(frozen=True)
class Case:
    handler: str
    params: Callable[[str], tuple[str, dict[str, Any]]]
    """The integration's base URL (from the fake's) and the catalog's params."""
    key_header: tuple[str, str] | None
    usage: dict[str, int]
    stream: bool = False

    def __str__(self) -> str:
        return self.handler + (" (stream)" if self.stream else "")


TEXT_USAGE = {"input_tokens": 2, "output_tokens": 3}
CASES = [
    Case(
        "openai.chat",
        lambda url: (f"{url}/v1", {"model": "gpt-fake"}),
        ("authorization", f"Bearer {KEY}"),
        TEXT_USAGE,
    ),
    Case(
        "openai.chat",
        lambda url: (f"{url}/v1", {"model": "gpt-fake", "stream": True}),
        ("authorization", f"Bearer {KEY}"),
        TEXT_USAGE,
        stream=True,
    ),
    Case(
        "openai.embeddings",
        lambda url: (f"{url}/v1", {"model": "embed-fake"}),
        ("authorization", f"Bearer {KEY}"),
        {"input_tokens": 2},
    ),
    Case(
        "gemini.generate",
        lambda url: (url, {"model": "gemini-fake"}),
        ("x-goog-api-key", KEY),
        TEXT_USAGE,
    ),
    Case(
        "gemini.generate",
        lambda url: (url, {"model": "gemini-fake", "stream": True}),
        ("x-goog-api-key", KEY),
        TEXT_USAGE,
        stream=True,
    ),
    Case(
        "anthropic.messages",
        lambda url: (url, {"model": "claude-fake"}),
        ("x-api-key", KEY),
        TEXT_USAGE,
    ),
    Case(
        "anthropic.messages",
        lambda url: (url, {"model": "claude-fake", "stream": True}),
        ("x-api-key", KEY),
        TEXT_USAGE,
        stream=True,
    ),
    Case(
        "http.json",
        lambda url: (
            url,
            {
                "path": "/predictions/model",
                "request": {"inputs": {"text": "{prompt}"}},
                "result_path": "outputs.0.text",
                "usage_paths": {"input_tokens": "meta.in", "output_tokens": "meta.out"},
            },
        ),
        ("authorization", f"Bearer {KEY}"),
        TEXT_USAGE,
    ),
]


def expected(case: Case) -> list[Any]:
    if case.handler == "openai.embeddings":
        return [[0.11, 0.5, -0.25]]
    return ["echo: hello world"]


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with fake_provider() as provider:
        yield provider


@pytest.fixture
async def http() -> AsyncIterator[ProviderHttp]:
    client = ProviderHttp()
    yield client
    await client.aclose()


class Chunks(JobContext):
    def __init__(self) -> None:
        self.chunks: list[str] = []
        super().__init__(self._collect)

    async def _collect(self, chunk: str) -> None:
        self.chunks.append(chunk)


async def run(
    http: ProviderHttp,
    case: Case,
    fake: FakeProvider,
    *,
    create_qty: int = 1,
    ctx: JobContext | None = None,
    integration: dict[str, Any] | None = None,
    **params: Any,
) -> tuple[list[Any], JobContext]:
    """The case's job as the worker runs it: catalog params naming the integration ``fake``,
    which the operator configured with the fake's URL and ``KEY``."""
    handler = build_registry(http=http).get(case.handler)
    base_url, own = case.params(fake.url)
    catalog = {**own, "integration": "fake", **FAST_RETRIES, **params}
    configured = Integration(base_url=base_url, api_key=KEY, **(integration or {}))
    job = Job(
        request_id=uuid.uuid4(),
        attempt=1,
        prompt="hello world",
        params=with_integration(catalog, catalog, {"fake": configured}),
        create_qty=create_qty,
    )
    ctx = ctx or Chunks()
    return await handler.execute(job, ctx), ctx


def retries(handler: str) -> float:
    return REGISTRY.get_sample_value("relai_provider_retries_total", {"handler": handler}) or 0.0


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_success_reports_results_and_usage(
    http: ProviderHttp, fake: FakeProvider, case: Case
) -> None:
    ctx = Chunks()
    results, _ = await run(http, case, fake, ctx=ctx)

    assert results == expected(case)
    assert ctx.usage == case.usage
    (call,) = fake.calls
    assert case.key_header is not None
    assert call.headers[case.key_header[0]] == case.key_header[1]
    if case.stream:
        assert "".join(ctx.chunks) == "echo: hello world"
        assert len(ctx.chunks) == 3
    else:
        assert ctx.chunks == []


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_429_waits_for_retry_after_then_succeeds(
    http: ProviderHttp, fake: FakeProvider, case: Case
) -> None:
    fake.script(Reply.rate_limited(retry_after=0.4))
    before = retries(case.handler)
    started = time.monotonic()

    results, ctx = await run(http, case, fake)

    assert time.monotonic() - started >= 0.35
    assert results == expected(case)
    assert ctx.usage == case.usage
    assert len(fake.calls) == 2
    assert retries(case.handler) == before + 1


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_500_then_success(http: ProviderHttp, fake: FakeProvider, case: Case) -> None:
    fake.script(Reply.error(500), Reply.error(503))
    results, ctx = await run(http, case, fake)
    assert results == expected(case)
    assert ctx.usage == case.usage
    assert len(fake.calls) == 3


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_malformed_body_fails_at_once(
    http: ProviderHttp, fake: FakeProvider, case: Case
) -> None:
    fake.script(Reply.malformed())
    with pytest.raises(HandlerError, match="malformed JSON"):
        await run(http, case, fake)
    assert len(fake.calls) == 1


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_a_slow_body_times_out_and_is_retried(
    http: ProviderHttp, fake: FakeProvider, case: Case
) -> None:
    fake.script(Reply.slow(1.0))
    results, _ = await run(http, case, fake, timeout_s=0.3)
    assert results == expected(case)
    assert len(fake.calls) == 2


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_a_hanging_provider_fails_after_the_last_retry(
    http: ProviderHttp, fake: FakeProvider, case: Case
) -> None:
    fake.script(Reply.hang(), Reply.hang())
    started = time.monotonic()
    with pytest.raises(HandlerError, match=r"timed out.*gave up after 2 attempts"):
        await run(http, case, fake, timeout_s=0.3, max_retries=1)
    assert 0.5 <= time.monotonic() - started < 5
    assert len(fake.calls) == 2


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_a_client_error_fails_at_once_with_the_key_masked(
    http: ProviderHttp, fake: FakeProvider, case: Case
) -> None:
    fake.script(Reply.error(401, {"error": {"message": f"Incorrect API key provided: {KEY}"}}))
    with pytest.raises(HandlerError) as failure:
        await run(http, case, fake)
    assert "provider answered 401" in str(failure.value)
    assert "Incorrect API key provided: ***" in str(failure.value)
    assert KEY not in str(failure.value)
    assert len(fake.calls) == 1


async def test_retries_stop_at_max_retries(http: ProviderHttp, fake: FakeProvider) -> None:
    fake.script(*[Reply.rate_limited()] * 4)
    with pytest.raises(HandlerError, match=r"429.*gave up after 3 attempts"):
        await run(http, CASES[0], fake, max_retries=2)
    assert len(fake.calls) == 3


async def test_retry_after_is_capped(http: ProviderHttp, fake: FakeProvider) -> None:
    fake.script(Reply.rate_limited(retry_after=3600))
    started = time.monotonic()
    results, _ = await run(http, CASES[0], fake, retry_after_max_s=0.2)
    assert results == ["echo: hello world"]
    assert 0.15 <= time.monotonic() - started < 3


async def test_a_stream_broken_after_partial_output_is_not_retried(
    http: ProviderHttp, fake: FakeProvider
) -> None:
    fake.script(Reply.stream_error())
    ctx = Chunks()
    with pytest.raises(HandlerError, match="stream broke after partial output"):
        await run(http, CASES[1], fake, ctx=ctx)
    assert ctx.chunks == ["echo:", " hello"]
    assert len(fake.calls) == 1


async def test_create_qty_is_n_for_openai_in_one_call(
    http: ProviderHttp, fake: FakeProvider
) -> None:
    results, ctx = await run(http, CASES[0], fake, create_qty=3)
    assert results == ["echo: hello world #0", "echo: hello world #1", "echo: hello world #2"]
    assert [c.body["n"] for c in fake.calls] == [3]
    assert ctx.usage == {"input_tokens": 2, "output_tokens": 9}


async def test_create_qty_is_candidate_count_for_gemini(
    http: ProviderHttp, fake: FakeProvider
) -> None:
    results, _ = await run(http, CASES[3], fake, create_qty=2)
    assert results == ["echo: hello world #0", "echo: hello world #1"]
    assert [c.body["generationConfig"]["candidateCount"] for c in fake.calls] == [2]


async def test_create_qty_repeats_calls_for_anthropic_and_sums_usage(
    http: ProviderHttp, fake: FakeProvider
) -> None:
    results, ctx = await run(http, CASES[5], fake, create_qty=2)
    assert results == ["echo: hello world"] * 2
    assert len(fake.calls) == 2
    assert ctx.usage == {"input_tokens": 4, "output_tokens": 6}


async def test_invalid_params_fail_naming_them(http: ProviderHttp, fake: FakeProvider) -> None:
    with pytest.raises(HandlerError, match="invalid params: max_retries"):
        await run(http, CASES[0], fake, max_retries=-1)
    with pytest.raises(HandlerError, match="invalid params: model is required"):
        await run(http, CASES[0], fake, model=None)


async def test_redirects_are_not_followed(http: ProviderHttp, fake: FakeProvider) -> None:
    fake.script(Reply.error(307))
    with pytest.raises(HandlerError, match="redirected"):
        await run(http, CASES[0], fake)
    assert len(fake.calls) == 1


async def test_a_url_guard_refuses_before_anything_is_sent(fake: FakeProvider) -> None:
    async def no_local(url: Any) -> None:
        raise ValueError("local addresses are not allowed")

    guarded = ProviderHttp(url_guard=no_local)
    try:
        with pytest.raises(HandlerError, match="refused: local addresses are not allowed"):
            await run(guarded, CASES[0], fake)
    finally:
        await guarded.aclose()
    assert fake.calls == []


async def test_the_ssrf_policy_refuses_a_local_provider_unless_allowed(
    fake: FakeProvider,
) -> None:
    strict = ProviderHttp(policy=UrlPolicy.from_allow([]))
    allowed = ProviderHttp(policy=UrlPolicy.from_allow(["127.0.0.1"]))
    try:
        with pytest.raises(HandlerError, match="127.0.0.1 is a loopback address"):
            await run(strict, CASES[0], fake)
        assert fake.calls == []
        results, _ = await run(allowed, CASES[0], fake)
        assert results == expected(CASES[0])
        # Any URL in the params, at any depth, is checked when the job runs.
        for sneaky in ("http://169.254.169.254/latest", "http://[::127.0.0.2]/", "file:///etc"):
            with pytest.raises(HandlerError, match=r"invalid params: params\.body\.messages\.0"):
                await run(allowed, CASES[0], fake, body={"messages": [{"image": sneaky}]})
    finally:
        await strict.aclose()
        await allowed.aclose()
    assert len(fake.calls) == 1


async def test_the_job_timeout_bounds_a_provider_call_and_usage_travels_with_the_result(
    redis_client: Redis, fake: FakeProvider, http: ProviderHttp
) -> None:
    base_url, own = CASES[0].params(fake.url)
    params = {"base_url": base_url, **own, **FAST_RETRIES}  # no integration: no key
    hung = task("openai.chat", "hello world", timeout_s=30, **params)
    ok = task("openai.chat", "hello world", **params)
    fake.script(Reply.hang())
    settings = FAST.model_copy(update={"worker_job_timeout_s": 0.5})

    async with running(redis_client, settings, registry=build_registry(http=http)):
        await add_tasks(redis_client, [hung])
        await wait_finals(redis_client, 1)
        await add_tasks(redis_client, [ok])
        results = finals(await wait_finals(redis_client, 2))

    assert [(r.kind, r.error, r.usage) for r in results] == [
        ("failed", "TimeoutError: job exceeded 0.5s", None),
        ("succeeded", None, {"input_tokens": 2, "output_tokens": 3}),
    ]


async def test_http_json_sends_the_key_in_the_configured_header(
    http: ProviderHttp, fake: FakeProvider
) -> None:
    await run(http, CASES[-1], fake, integration={"auth_header": "X-Model-Key", "auth_prefix": ""})
    (call,) = fake.calls
    assert call.headers["x-model-key"] == KEY
    assert "authorization" not in call.headers
    assert call.body == {"inputs": {"text": "hello world"}}


async def test_the_fake_counts_concurrent_calls(http: ProviderHttp, fake: FakeProvider) -> None:
    fake.script(*[Reply.ok(delay_s=0.3)] * 3)
    await asyncio.gather(*(run(http, CASES[0], fake) for _ in range(3)))
    assert (fake.max_in_flight, fake.in_flight, len(fake.calls)) == (3, 0, 3)


async def test_only_the_first_result_streams(http: ProviderHttp, fake: FakeProvider) -> None:
    ctx = Chunks()
    results, _ = await run(http, CASES[6], fake, ctx=ctx, create_qty=2)
    assert results == ["echo: hello world"] * 2
    assert ctx.chunks == ["echo:", " hello", " world"]
    assert len(fake.calls) == 2
