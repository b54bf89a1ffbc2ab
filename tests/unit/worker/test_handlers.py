import random
import time
import uuid
from typing import Any

import pytest

from services.worker.handlers import build_registry
from services.worker.handlers.echo import EchoDelay, EchoStream, EchoText
from services.worker.job import HandlerError, Job, JobContext
from services.worker.registry import HandlerRegistry, UnknownHandlerError


def job(prompt: str = "hi", *, create_qty: int = 1, **params: Any) -> Job:
    return Job(
        request_id=uuid.uuid4(), attempt=1, prompt=prompt, params=params, create_qty=create_qty
    )


def test_build_registry_lists_the_builtins() -> None:
    registry = build_registry()
    assert list(registry) == [
        "anthropic.messages",
        "echo.delay",
        "echo.stream",
        "echo.text",
        "gemini.generate",
        "gemini.images",
        "http.json",
        "image.draw",
        "image.transform",
        "openai.chat",
        "openai.embeddings",
        "openai.images",
    ]
    assert "echo.text" in registry
    assert len(registry) == 12


def test_each_build_is_a_new_registry() -> None:
    first = build_registry()
    first.register("extra.one", EchoText())
    assert "extra.one" not in build_registry()


def test_unknown_handler_has_a_clear_error() -> None:
    with pytest.raises(UnknownHandlerError, match=r"^unknown handler 'x\.y'$"):
        build_registry().get("x.y")


def test_unknown_handler_is_a_handler_error() -> None:
    assert issubclass(UnknownHandlerError, HandlerError)


@pytest.mark.parametrize("name", ["echo", "Echo.text", "echo.text.more", ".text", "echo."])
def test_register_rejects_ids_that_are_not_module_dot_method(name: str) -> None:
    with pytest.raises(ValueError, match="module"):
        HandlerRegistry().register(name, EchoText())


def test_register_rejects_duplicates() -> None:
    registry = HandlerRegistry()
    registry.register("echo.text", EchoText())
    with pytest.raises(ValueError, match="already registered"):
        registry.register("echo.text", EchoText())


@pytest.mark.parametrize("qty", [1, 3])
async def test_echo_text_returns_the_prompt_create_qty_times(qty: int) -> None:
    assert await EchoText().execute(job("hello", create_qty=qty), JobContext()) == ["hello"] * qty


async def test_echo_delay_without_params_returns_at_once() -> None:
    started = time.monotonic()
    assert await EchoDelay().execute(job("x", create_qty=2), JobContext()) == ["x", "x"]
    assert time.monotonic() - started < 0.05


async def test_echo_delay_sleeps_delay_ms() -> None:
    started = time.monotonic()
    assert await EchoDelay().execute(job("x", delay_ms=80), JobContext()) == ["x"]
    assert time.monotonic() - started >= 0.075


async def test_echo_delay_never_fails_at_rate_zero() -> None:
    handler = EchoDelay(random.Random(1))
    for _ in range(200):
        assert await handler.execute(job("x", failure_rate=0), JobContext()) == ["x"]


async def test_echo_delay_always_fails_at_rate_one() -> None:
    handler = EchoDelay(random.Random(1))
    for _ in range(20):
        with pytest.raises(HandlerError, match="^simulated failure$"):
            await handler.execute(job("x", failure_rate=1.0), JobContext())


async def test_echo_delay_fails_about_as_often_as_asked() -> None:
    handler = EchoDelay(random.Random(7))
    failures = 0
    for _ in range(1000):
        try:
            await handler.execute(job("x", failure_rate=0.3), JobContext())
        except HandlerError:
            failures += 1
    assert 230 < failures < 370


@pytest.mark.parametrize(
    "params",
    [{"delay_ms": "10"}, {"delay_ms": -1}, {"delay_ms": True}, {"failure_rate": 2}],
)
async def test_echo_delay_rejects_bad_params(params: dict[str, Any]) -> None:
    with pytest.raises(HandlerError, match="^invalid params: "):
        await EchoDelay().execute(job("x", **params), JobContext())


async def test_echo_text_puts_the_prefix_param_first() -> None:
    assert await EchoText().execute(job("hi", prefix="v2: "), JobContext()) == ["v2: hi"]
    with pytest.raises(HandlerError, match="prefix must be a string"):
        await EchoText().execute(job("hi", prefix=3), JobContext())


async def test_echo_stream_emits_the_prompt_word_by_word() -> None:
    chunks: list[str] = []

    async def sink(chunk: str) -> None:
        chunks.append(chunk)

    prompt = "  one two\tthree  four "
    results = await EchoStream().execute(job(prompt, create_qty=2, delay_ms=1), JobContext(sink))
    assert chunks == ["  one ", "two\t", "three  ", "four "]
    assert "".join(chunks) == prompt
    assert results == [prompt, prompt]


async def test_echo_stream_refuses_a_negative_delay() -> None:
    with pytest.raises(HandlerError, match="delay_ms must be >= 0"):
        await EchoStream().execute(job(delay_ms=-1), JobContext())


@pytest.mark.parametrize(
    ("handler", "params"),
    [(EchoText(), {"prefix": "well, "}), (EchoDelay(), {}), (EchoStream(), {"delay_ms": 0})],
)
async def test_echo_handlers_report_a_token_a_word(handler: Any, params: dict[str, Any]) -> None:
    ctx = JobContext()
    results = await handler.execute(job("say  it\tthree", create_qty=2, **params), ctx)
    words = sum(len(result.split()) for result in results)
    assert ctx.usage == {"input_tokens": 3, "output_tokens": words}
    assert words == (8 if params.get("prefix") else 6)
