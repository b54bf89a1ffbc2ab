"""Redis Streams plumbing shared by the services: the client, groups, and message framing."""

from libs.streams.client import create_redis, ensure_group
from libs.streams.framing import decode, encode

__all__ = ["create_redis", "decode", "encode", "ensure_group"]
