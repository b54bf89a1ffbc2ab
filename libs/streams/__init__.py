"""Redis Streams plumbing shared by the services: the client, groups, and message framing."""

from libs.streams.client import create_redis, ensure_group, parse_sentinel_url
from libs.streams.framing import Entry, decode, encode, entries_of

__all__ = [
    "Entry",
    "create_redis",
    "decode",
    "encode",
    "ensure_group",
    "entries_of",
    "parse_sentinel_url",
]
