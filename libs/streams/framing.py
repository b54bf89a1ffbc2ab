"""Each stream entry carries one field holding the message's JSON."""

from typing import Any, TypeVar

from pydantic import BaseModel
from redis.typing import EncodableT, FieldT

from libs.contracts.streams import MESSAGE_FIELD

M = TypeVar("M", bound=BaseModel)


def encode(message: BaseModel) -> dict[FieldT, EncodableT]:
    return {MESSAGE_FIELD: message.model_dump_json(exclude_none=True).encode()}


def decode(model: type[M], fields: Any) -> M:
    return model.model_validate_json(fields[MESSAGE_FIELD])


Entry = tuple[bytes, dict[bytes, bytes]]
"""A stream entry: its id and its fields."""


def entries_of(response: Any) -> list[Entry]:
    """The entries of a one-stream ``XREAD``/``XREADGROUP`` reply (our clients speak RESP2:
    ``[[stream, entries]]``, or nothing when the read timed out)."""
    if not response:
        return []
    return list(response[0][1])
