"""The official ``openai`` SDK, unchanged, pointed at Relai by ``base_url``, against the real
processes (``relai-api --workers 2``, two ``relai-worker``): models and aliases, chat
completions with and without streaming, embeddings, the typed errors, idempotency and retries,
per-token prices; every call a durable request charged once."""

import uuid
from typing import Any

import asyncpg
import httpx
import httpx2  # the HTTP client the openai SDK is built on
import openai
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.openai.conftest import WORDS, ledger_of, request_id_of
from tests.e2e.providers import KEY
from tests.fakes.provider import FakeProvider

pytestmark = pytest.mark.e2e


async def test_models_lists_the_chat_and_embedding_offers(sdk: openai.AsyncOpenAI) -> None:
    ids = [m.id async for m in sdk.models.list()]
    assert {"demo/ask", "chat/words", "chat/gpt", "embed/small"} <= set(ids)
    assert "demo/greet" not in ids  # two template variables: no single conversation fills it
    model = await sdk.models.retrieve("chat/gpt")
    assert (model.id, model.object) == ("chat/gpt", "model")
    with pytest.raises(openai.NotFoundError):
        await sdk.models.retrieve("nope/none")


async def test_a_chat_completion_streamed_assembles_to_the_answer_and_is_one_request(
    sdk: openai.AsyncOpenAI, stack: Stack, db_pool: "asyncpg.Pool[Any]"
) -> None:
    messages: Any = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": WORDS},
    ]
    stream = await sdk.chat.completions.create(
        model="chat/words",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage, ids = [], None, set()
    async for chunk in stream:
        ids.add(chunk.id)
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(pieces) == WORDS
    assert len(pieces) == len(WORDS.split())  # fed by the worker's chunks, word by word
    assert usage is not None
    assert usage.completion_tokens == len(WORDS.split())
    (completion_id,) = ids

    # The same call without streaming is the same request: answered from it, not run again.
    answer = await sdk.chat.completions.create(model="chat/words", messages=messages)
    assert answer.id == completion_id
    assert answer.choices[0].message.content == WORDS
    assert answer.usage is not None
    assert answer.usage.total_tokens > 0
    request_id = request_id_of(completion_id)
    assert await ledger_of(db_pool, request_id) == {"reserve": 1, "settle": 1}
    async with httpx.AsyncClient(base_url=stack.url, headers=stack.headers) as client:
        view = (await client.get(f"/svc/request/{request_id}")).json()
    assert (view["service"], view["action"], view["status"]) == ("chat", "words", "succeeded")


def test_the_sync_client_gets_a_completion(stack: Stack, catalog: None) -> None:
    with openai.OpenAI(
        base_url=f"{stack.url}/v1", api_key=stack.user.api_key, timeout=60
    ) as client:
        answer = client.chat.completions.create(
            model="demo/ask", messages=[{"role": "user", "content": "sync hello"}]
        )
    assert answer.choices[0].message.content == "sync hello"
    assert answer.object == "chat.completion"


async def test_a_provider_gets_the_conversation_and_the_options(
    sdk: openai.AsyncOpenAI, fake: FakeProvider
) -> None:
    answer = await sdk.chat.completions.create(
        model="chat/gpt",
        messages=[
            {"role": "developer", "content": "answer in French"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "premier"},
            {"role": "user", "content": "second question"},
        ],
        temperature=0.25,
        max_tokens=50,
        stop=["END"],
    )
    assert answer.choices[0].message.content == "echo: second question"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens > 0
    (call,) = fake.calls
    assert call.body["messages"] == [
        {"role": "system", "content": "answer in French"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "premier"},
        {"role": "user", "content": "second question"},
    ]
    assert (call.body["temperature"], call.body["max_tokens"], call.body["stop"]) == (
        0.25,
        50,
        ["END"],
    )
    assert call.body["model"] == "gpt-fake"
    assert call.headers["authorization"] == f"Bearer {KEY}"


async def test_embeddings_one_vector_per_input(sdk: openai.AsyncOpenAI) -> None:
    # The SDK asks for base64 (and decodes it); a client may ask for floats.
    result = await sdk.embeddings.create(model="embed/small", input=["alpha", "beta gamma"])
    assert [d.index for d in result.data] == [0, 1]
    assert all(isinstance(x, float) for d in result.data for x in d.embedding)
    assert result.usage.prompt_tokens == 3
    floats = await sdk.embeddings.create(
        model="embed/small", input=["alpha", "beta gamma"], encoding_format="float"
    )
    for exact, packed in zip(floats.data, result.data, strict=True):
        assert packed.embedding == pytest.approx(exact.embedding, rel=1e-6)  # float32
    with pytest.raises(openai.NotFoundError):
        await sdk.embeddings.create(model="chat/gpt", input="not an embedding model")


async def test_a_model_alias_is_its_offer_under_the_name_a_client_knows(
    sdk: openai.AsyncOpenAI, fake: FakeProvider, db_pool: "asyncpg.Pool[Any]"
) -> None:
    owners = {m.id: m.owned_by async for m in sdk.models.list()}
    assert (owners["gpt-4o-mini"], owners["text-embedding-3-small"]) == ("chat", "embed")
    assert (await sdk.models.retrieve("gpt-4o-mini")).id == "gpt-4o-mini"
    messages: Any = [{"role": "user", "content": "a name baked in"}]
    answer = await sdk.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert (answer.model, answer.choices[0].message.content) == (
        "gpt-4o-mini",
        "echo: a name baked in",
    )
    # Under the offer's own name, it is the same request: answered from it, not run again.
    again = await sdk.chat.completions.create(model="chat/gpt", messages=messages)
    assert (again.id, again.model) == (answer.id, "chat/gpt")
    (call,) = fake.calls
    assert call.body["model"] == "gpt-fake"  # the provider gets the offer's model, not the alias
    assert await ledger_of(db_pool, request_id_of(answer.id)) == {"reserve": 2, "settle": 2}
    vectors = await sdk.embeddings.create(model="text-embedding-3-small", input="alpha")
    assert (vectors.model, len(vectors.data)) == ("text-embedding-3-small", 1)


async def test_errors_raise_the_sdk_typed_exceptions(sdk: openai.AsyncOpenAI, stack: Stack) -> None:
    stranger = openai.AsyncOpenAI(base_url=f"{stack.url}/v1", api_key="rk_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        async with stranger:
            await stranger.models.list()
    assert denied.value.status_code == 401
    assert denied.value.response.headers["x-request-id"].startswith("req_")
    with pytest.raises(openai.NotFoundError) as missing:
        await sdk.chat.completions.create(
            model="nope/none", messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as empty:
        await sdk.chat.completions.create(model="demo/ask", messages=[])
    assert empty.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as tools:
        await sdk.chat.completions.create(
            model="demo/ask",
            messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        )
    assert tools.value.param == "tools"


async def test_an_idempotency_key_replays_and_refuses_another_body(
    sdk: openai.AsyncOpenAI, db_pool: "asyncpg.Pool[Any]"
) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    messages: Any = [{"role": "user", "content": "keyed"}]
    first = await sdk.chat.completions.create(
        model="demo/ask", messages=messages, extra_headers=key
    )
    replay = await sdk.chat.completions.create(
        model="demo/ask", messages=messages, extra_headers=key
    )
    assert replay.id == first.id
    with pytest.raises(openai.UnprocessableEntityError):
        await sdk.chat.completions.create(
            model="demo/ask", messages=[{"role": "user", "content": "other"}], extra_headers=key
        )
    assert await ledger_of(db_pool, request_id_of(first.id)) == {"reserve": 1, "settle": 1}


class _LoseFirstAnswer(httpx2.AsyncBaseTransport):
    """The network drops the first answer after the server has handled the call: the SDK
    retries a call that did run."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self.calls = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.calls += 1
        response = await self._inner.handle_async_request(request)
        if self.calls == 1:
            await response.aread()
            await response.aclose()
            raise httpx2.ReadError("connection reset", request=request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_a_retried_call_runs_and_is_charged_once(
    stack: Stack, catalog: None, db_pool: "asyncpg.Pool[Any]"
) -> None:
    transport = _LoseFirstAnswer()
    client = openai.AsyncOpenAI(
        base_url=f"{stack.url}/v1",
        api_key=stack.user.api_key,
        max_retries=2,
        http_client=openai.DefaultAsyncHttpxClient(transport=transport),
    )
    text = f"retried {uuid.uuid4()}"
    async with client:
        answer = await client.chat.completions.create(
            model="demo/ask", messages=[{"role": "user", "content": text}]
        )
    assert transport.calls == 2
    assert answer.choices[0].message.content == text
    assert await ledger_of(db_pool, request_id_of(answer.id)) == {"reserve": 1, "settle": 1}
    count = await db_pool.fetchval("SELECT count(*) FROM requests WHERE prompt = $1", text)
    assert count == 1


async def test_a_token_priced_model_reserves_the_most_and_settles_the_usage(
    sdk: openai.AsyncOpenAI, db_pool: "asyncpg.Pool[Any]"
) -> None:
    """chat/priced: 1 credit, 100 per 1,000 input tokens, 200 per 1,000 output tokens, at most
    100 output tokens (echo.text counts a token a word)."""
    messages: Any = [{"role": "user", "content": "one two three"}]
    answer = await sdk.chat.completions.create(
        model="chat/priced", messages=messages, max_tokens=10
    )
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (3, 3)
    # Reserved: 1 + ceil((20 input tokens at most * 100 + 10 * 200) / 1000) = 5, the input bound
    # being its 13 bytes + 4 + 3; settled: 1 + ceil((3 * 100 + 3 * 200) / 1000) = 2.
    ledger = await ledger_of(db_pool, request_id_of(answer.id))
    assert ledger == {"reserve": 5, "settle": 2, "release": 3}
    with pytest.raises(openai.UnprocessableEntityError, match="at most 100"):
        await sdk.chat.completions.create(model="chat/priced", messages=messages, max_tokens=101)
