"""Handler ids, ``<module>.<method>``: one rule, held alike by the catalog, the central config
``worker`` and the worker's registry."""

from typing import Any

import pytest
from pydantic import ValidationError

from libs.catalog import HandlerSpec
from libs.config import WorkerConfig
from libs.contracts import HANDLER_ID, is_handler_id
from services.worker.registry import HandlerRegistry

ACCEPTED = ["openai.chat", "echo.text", "a.b", "gpt4_1.chat", "local_llm.chat_v2", "4o.chat"]
REFUSED = [
    "",
    "openai",
    "Bad",
    "OpenAI.chat",
    "openai.Chat",
    "open-ai.chat",
    "openai.chat.x",
    ".chat",
    "openai.",
    "open ai.chat",
    "openai.chat\n",
    "opénai.chat",
    "openai/chat",
]


class _Handler:
    async def execute(self, job: Any, ctx: Any) -> list[str]:
        return []


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted_everywhere(name: str) -> None:
    assert is_handler_id(name)
    assert HANDLER_ID.fullmatch(name)
    assert HandlerSpec(id=name).id == name
    assert name in WorkerConfig(handlers={name: {}}).handlers
    registry = HandlerRegistry()
    registry.register(name, _Handler())
    assert name in registry


@pytest.mark.parametrize("name", REFUSED)
def test_refused_everywhere(name: str) -> None:
    assert not is_handler_id(name)
    with pytest.raises(ValidationError, match="pattern"):
        HandlerSpec(id=name)
    with pytest.raises(ValidationError, match="pattern"):
        WorkerConfig(handlers={name: {}})
    with pytest.raises(ValueError, match="is not '<module>.<method>'"):
        HandlerRegistry().register(name, _Handler())
