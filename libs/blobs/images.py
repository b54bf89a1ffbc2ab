"""What an image really is, from its bytes: its type, its size in pixels, and whether it decodes.

The type comes from the bytes (never a client's header); the pixel count is read from the
header and checked before anything is decoded, so a decompression bomb (a small file that
expands to gigabytes) is refused without being expanded."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from libs.contracts.files import IMAGE_TYPES

_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
DEFAULT_MAX_PIXELS = 40_000_000
"""The most pixels an image may have when its offer names no limit (a 6,000 × 6,000 photo
has 36 million)."""
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
"""The most an offer may allow: past it the image library itself calls the file a bomb."""


class NotAnImage(ValueError):
    """The bytes are not an image of an accepted type, or not a whole one; the message says
    why, in words a client can act on."""


@dataclass(frozen=True, slots=True)
class ImageInfo:
    media_type: str
    width: int
    height: int


def inspect_image(
    data: bytes,
    *,
    accept: tuple[str, ...] = IMAGE_TYPES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImageInfo:
    """Identify, bound and fully decode ``data``. CPU-bound: call it off the event loop
    (``asyncio.to_thread``) for anything but small images."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=list(_FORMATS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise NotAnImage(
                f"the image declares more pixels than any accepted ({max_pixels:,} at most): "
                "a decompression bomb is refused"
            ) from None
        except UnidentifiedImageError:
            raise NotAnImage(
                f"the file is not an image of an accepted type ({_list(accept)})"
            ) from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise NotAnImage(f"the image could not be read: {exc}") from None
        with image:
            media_type = _FORMATS.get(image.format or "", "")
            if media_type not in accept:
                raise NotAnImage(
                    f"the file is {media_type or 'an image of another type'}; "
                    f"accepted: {_list(accept)}"
                )
            width, height = image.size
            if width < 1 or height < 1:
                raise NotAnImage("the image has no pixels")
            if width * height > max_pixels:
                raise NotAnImage(
                    f"the image is {width}×{height} pixels ({width * height:,}); "
                    f"the limit is {max_pixels:,} pixels"
                )
            try:
                image.load()
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                raise NotAnImage(f"the image is damaged or truncated: {exc}") from None
    return ImageInfo(media_type, width, height)


def _list(accept: tuple[str, ...]) -> str:
    return ", ".join(accept)
