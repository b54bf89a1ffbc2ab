"""Provider handlers: real AI services over HTTP (httpx), with retries, usage and streaming."""

from services.worker.providers.anthropic import AnthropicMessages
from services.worker.providers.base import ProviderHandler, Reply
from services.worker.providers.errors import PermanentError, ProviderError, TransientError
from services.worker.providers.gemini import GeminiGenerate, GeminiImages
from services.worker.providers.http import ProviderHttp, UrlGuard
from services.worker.providers.http_json import HttpJson
from services.worker.providers.openai import OpenAIChat, OpenAIEmbeddings
from services.worker.providers.openai_images import OpenAIImages

__all__ = [
    "AnthropicMessages",
    "GeminiGenerate",
    "GeminiImages",
    "HttpJson",
    "OpenAIChat",
    "OpenAIEmbeddings",
    "OpenAIImages",
    "PermanentError",
    "ProviderError",
    "ProviderHandler",
    "ProviderHttp",
    "Reply",
    "TransientError",
    "UrlGuard",
]
