"""The bodies the OpenAI-compatible door takes, as OpenAI's clients send them, and the
conversation every one of them comes down to: ``[{"role", "content"}]`` with text content, and
the sampling options passed to the provider.

What Relai cannot honour (tools, images, several choices) is refused with a 400 naming the
field, never ignored: a client that asks for a tool call must not get a plain answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from services.api.errors import BadRequest
from services.api.text import STORABLE_PATTERN

Text = Annotated[str, Field(pattern=STORABLE_PATTERN)]
MAX_MESSAGES = 1000
MAX_STOP = 4


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text", "input_text", "output_text"]
    text: Text


Content = Text | list[TextPart]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: Content
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: StrictBool = False


class _Sampling(BaseModel):
    """What every door passes on to the provider, as OpenAI names it."""

    model_config = ConfigDict(extra="forbid")

    model: Annotated[str, Field(min_length=1, max_length=200)]
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    """The caller's end user, for their own records: not sent on."""
    metadata: dict[str, str] | None = None
    store: StrictBool | None = None
    service_tier: Annotated[str, Field(max_length=20)] | None = None
    """The priority tier to be served at, among those the model's offer sells (``auto``: its
    default; one it does not sell is refused, naming those it does); the answer's
    ``service_tier`` is the one it was served at."""


class ChatCompletionBody(_Sampling):
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=MAX_MESSAGES)]
    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    stop: Text | Annotated[list[Text], Field(max_length=MAX_STOP)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    seed: StrictInt | None = None
    response_format: dict[str, Any] | None = None
    n: Annotated[StrictInt, Field(ge=1, le=1)] | None = None
    """One choice per call: ask again (with an ``Idempotency-Key``) for another."""
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    logprobs: StrictBool | None = None
    parallel_tool_calls: StrictBool | None = None

    def refuse_unsupported(self) -> None:
        for name in ("tools", "functions", "tool_choice"):
            if getattr(self, name) not in (None, [], "none"):
                raise BadRequest("tool calls are not supported by this API", param=name)
        if self.logprobs:
            raise BadRequest("logprobs are not supported by this API", param="logprobs")

    @property
    def output_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def options(self) -> dict[str, Any]:
        return _options(
            temperature=self.temperature,
            top_p=self.top_p,
            stop=self.stop,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            seed=self.seed,
            response_format=self.response_format,
        )


class InputMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["message"] = "message"
    role: Literal["system", "developer", "user", "assistant"]
    content: Content


class ResponseBody(_Sampling):
    input: Text | Annotated[list[InputMessage], Field(min_length=1, max_length=MAX_MESSAGES)]
    instructions: Text | None = None
    max_output_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    background: StrictBool = False
    stream: StrictBool = False
    tools: list[Any] | None = None
    tool_choice: Any = None
    previous_response_id: str | None = None
    reasoning: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    truncation: Literal["disabled"] | None = None

    def refuse_unsupported(self) -> None:
        if self.tools or self.tool_choice not in (None, "none"):
            raise BadRequest("tool calls are not supported by this API", param="tools")
        if self.previous_response_id is not None:
            raise BadRequest(
                "previous_response_id is not supported: send the whole conversation as input",
                param="previous_response_id",
            )
        if self.reasoning:
            raise BadRequest("reasoning options are not supported", param="reasoning")

    def messages(self) -> list[dict[str, str]]:
        turns = (
            [{"role": "user", "content": self.input}]
            if isinstance(self.input, str)
            else [{"role": m.role, "content": m.content} for m in self.input]
        )
        if self.instructions:
            turns.insert(0, {"role": "system", "content": self.instructions})
        return conversation(turns, field="input")

    def options(self) -> dict[str, Any]:
        return _options(temperature=self.temperature, top_p=self.top_p)


class EmbeddingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Annotated[str, Field(min_length=1, max_length=200)]
    input: Text | Annotated[list[Text], Field(min_length=1, max_length=2048)]
    encoding_format: Literal["float", "base64"] | None = None
    """Vectors as lists of numbers (the default), or as base64 of their little-endian float32
    values (what the ``openai`` SDK asks for, and decodes)."""
    dimensions: Annotated[StrictInt, Field(ge=1)] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None

    def texts(self) -> list[str]:
        texts = [self.input] if isinstance(self.input, str) else self.input
        if any(not text for text in texts):
            raise BadRequest("input must not be empty", param="input")
        return texts


def _options(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _text(content: str | list[TextPart] | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.text if isinstance(p, TextPart) else str(p.get("text", "")) for p in content)


def conversation(turns: list[dict[str, Any]], *, field: str = "messages") -> list[dict[str, str]]:
    """The turns as ``{"role", "content"}`` with text content (``developer`` reads as
    ``system``, text parts are joined); the last must be the user's, which the offer's prompt
    template is applied to."""
    messages = [
        {
            "role": "system" if t["role"] == "developer" else t["role"],
            "content": _text(t["content"]),
        }
        for t in turns
    ]
    if messages[-1]["role"] != "user":
        raise BadRequest("the last message must be the user's", param=field)
    if not messages[-1]["content"]:
        raise BadRequest("the last message has no text", param=field)
    return messages


def chat_messages(body: ChatCompletionBody) -> list[dict[str, str]]:
    return conversation(
        [{"role": m.role, "content": m.content} for m in body.messages], field="messages"
    )
