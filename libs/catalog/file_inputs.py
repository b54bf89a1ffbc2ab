"""An offer's file inputs: what each takes, as the catalog declares it."""

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from libs.blobs.images import DEFAULT_MAX_PIXELS, MAX_PIXELS
from libs.catalog.numbers import JSON_INTEGER
from libs.contracts.files import IMAGE_TYPES

MiB = 1024 * 1024
FILE_MAX_BYTES = 20 * MiB
"""The largest file an offer's file input takes when it names no ``max_bytes``."""
FILE_MAX_BYTES_CAP = 50 * MiB
"""The most ``max_bytes`` may be: a file is held whole in memory while it is checked."""
FILE_INPUTS_MAX = 8
"""The most file inputs one offer may declare."""
FILE_INPUT_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
ImageType = Literal["image/png", "image/jpeg", "image/webp", "image/gif"]
_IMAGE_TYPES: tuple[ImageType, ...] = get_args(ImageType)
if set(_IMAGE_TYPES) != set(IMAGE_TYPES):  # pragma: no cover - kept in step by hand
    raise RuntimeError("ImageType and libs.contracts.files.IMAGE_TYPES disagree")


class FileInputSpec(BaseModel):
    """One file input of an offer: an image the client sends with the submission (a part of a
    ``multipart/form-data`` body) or names by the id of one of their uploads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    types: list[ImageType] = Field(default_factory=lambda: list(_IMAGE_TYPES), min_length=1)
    """The media types it accepts, each recognised from the file's bytes."""
    max_bytes: Annotated[int, Field(ge=1, le=FILE_MAX_BYTES_CAP), JSON_INTEGER] = FILE_MAX_BYTES
    """The largest file it takes, in bytes."""
    max_pixels: Annotated[int, Field(ge=1, le=MAX_PIXELS), JSON_INTEGER] = DEFAULT_MAX_PIXELS
    """The most pixels (width × height) the image may have."""
    required: StrictBool = True

    @field_validator("types")
    @classmethod
    def _types_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a media type is listed twice")
        return value
