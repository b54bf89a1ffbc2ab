"""What every view of a request (``GET /svc/request/{id}``, ``/svc/requests``, the WebSocket's
messages) shows of its files: the stored ``FileRef`` fields plus ``url``, the (relative) path
that serves its bytes."""

from __future__ import annotations

from typing import Any

from services.api.files.signing import content_path


def _is_file(value: Any) -> bool:
    return type(value) is dict and value.get("type") == "file" and isinstance(value.get("id"), str)


def linked(ref: dict[str, Any]) -> dict[str, Any]:
    """A stored file reference with its ``url``."""
    return {**ref, "url": content_path(ref["id"])}


def linked_results(results: list[Any] | None) -> list[Any] | None:
    """``results`` with a ``url`` on each file; the same list when it holds none (text results,
    the common case, cost one pass and no copy)."""
    if not results or not any(_is_file(r) for r in results):
        return results
    return [linked(r) if _is_file(r) else r for r in results]


def linked_inputs(inputs: dict[str, Any], files: dict[str, Any] | None) -> dict[str, Any]:
    """A request's ``inputs`` (each file input stored as the id of the request's copy) with each
    file input shown as that file, while it is kept (``files``: the request's input files by
    name)."""
    if not files:
        return inputs
    return {**inputs, **{name: linked(ref) for name, ref in files.items() if _is_file(ref)}}
