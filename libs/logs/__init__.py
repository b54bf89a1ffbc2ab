"""Structured logs: one JSON object a line, carrying the ``request_id`` bound in context."""

from libs.logs.setup import bind_request, configure_logging, get_logger

__all__ = ["bind_request", "configure_logging", "get_logger"]
