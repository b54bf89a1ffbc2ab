"""The worker's composition root for handlers: every handler this worker can run is listed here,
then the handlers installed as packages (entry point group ``relai.handlers``)."""

import random

from services.worker.handlers._plugins import GROUP, PluginError, register_plugins
from services.worker.handlers.echo import EchoDelay, EchoStream, EchoText
from services.worker.handlers.images import DrawImage, TransformImage
from services.worker.providers import (
    AnthropicMessages,
    GeminiGenerate,
    GeminiImages,
    HttpJson,
    OpenAIChat,
    OpenAIEmbeddings,
    OpenAIImages,
    ProviderHttp,
)
from services.worker.registry import HandlerRegistry

__all__ = ["GROUP", "PluginError", "build_registry"]


def build_registry(
    *, rng: random.Random | None = None, http: ProviderHttp | None = None
) -> HandlerRegistry:
    """``http`` is the providers' shared client (its owner closes it); one is made if not given,
    though no connection is opened before a provider handler runs."""
    http = http or ProviderHttp()
    registry = HandlerRegistry()
    registry.register("echo.text", EchoText())
    registry.register("echo.delay", EchoDelay(rng))
    registry.register("echo.stream", EchoStream())
    registry.register("image.draw", DrawImage())
    registry.register("image.transform", TransformImage())
    registry.register("openai.chat", OpenAIChat("openai.chat", http))
    registry.register("openai.embeddings", OpenAIEmbeddings("openai.embeddings", http))
    registry.register("openai.images", OpenAIImages("openai.images", http))
    registry.register("gemini.generate", GeminiGenerate("gemini.generate", http))
    registry.register("gemini.images", GeminiImages("gemini.images", http))
    registry.register("anthropic.messages", AnthropicMessages("anthropic.messages", http))
    registry.register("http.json", HttpJson("http.json", http))
    register_plugins(registry, http)
    return registry
