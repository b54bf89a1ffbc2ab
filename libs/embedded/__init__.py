"""Private PostgreSQL and Valkey servers for a machine that has neither (``make run``, tests)."""

from libs.embedded.servers import EmbeddedServers, start_embedded

__all__ = ["EmbeddedServers", "start_embedded"]
