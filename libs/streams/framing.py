"""Each stream entry carries one field holding the message's JSON."""

from typing import TypeVar

from pydantic import BaseModel

from libs.contracts.streams import MESSAGE_FIELD

M = TypeVar("M", bound=BaseModel)


def encode(message: BaseModel) -> dict[bytes, bytes]:
    return {MESSAGE_FIELD: message.model_dump_json(exclude_none=True).encode()}


def decode(model: type[M], fields: dict[bytes, bytes]) -> M:
    return model.model_validate_json(fields[MESSAGE_FIELD])
