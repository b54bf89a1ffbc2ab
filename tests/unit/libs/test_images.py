"""An image is recognised from its bytes, bounded before it is decoded, and decoded whole."""

import io
import uuid

import pytest
from PIL import Image

from libs.blobs import NotAnImage, inspect_image
from libs.contracts.files import (
    blob_key,
    input_file_id,
    parse_file_id,
    result_file_id,
)


def _encoded(fmt: str, size: tuple[int, int] = (30, 20), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "red" if mode == "RGB" else 0).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_each_accepted_type_is_recognised_with_its_size(fmt: str, media_type: str) -> None:
    info = inspect_image(_encoded(fmt))
    assert (info.media_type, info.width, info.height) == (media_type, 30, 20)


def test_text_is_not_an_image() -> None:
    with pytest.raises(NotAnImage, match="not an image of an accepted type"):
        inspect_image(b"%PDF-1.7 definitely not a picture")


def test_a_truncated_image_is_refused() -> None:
    with pytest.raises(NotAnImage, match="damaged or truncated"):
        inspect_image(_encoded("PNG")[:60])


def test_a_type_the_caller_does_not_accept_is_named() -> None:
    with pytest.raises(NotAnImage, match="the file is image/png; accepted: image/jpeg"):
        inspect_image(_encoded("PNG"), accept=("image/jpeg",))


def test_too_many_pixels_are_refused_before_decoding() -> None:
    with pytest.raises(NotAnImage, match=r"8000×8000 pixels .* the limit is 40,000,000"):
        inspect_image(_encoded("PNG", (8000, 8000), mode="1"))


def test_a_decompression_bomb_is_refused() -> None:
    """20,000 × 20,000 one-bit pixels compress to about 50 kB and would decode to 400 MB."""
    bomb = _encoded("PNG", (20_000, 20_000), mode="1")
    assert len(bomb) < 100_000
    with pytest.raises(NotAnImage, match="decompression bomb"):
        inspect_image(bomb)


def test_file_ids_are_stable_and_distinct() -> None:
    request = uuid.uuid4()
    first = result_file_id(request, None, 0)
    assert first == result_file_id(request, None, 0)
    assert len({first, result_file_id(request, None, 1), result_file_id(request, 0, 0)}) == 3
    assert input_file_id(request, "image") != input_file_id(request, "mask")
    assert parse_file_id(first) is not None
    assert parse_file_id("file-xyz") is None
    assert parse_file_id("file-" + "0" * 31 + "g") is None


def test_blobs_are_spread_over_two_directory_levels() -> None:
    sha = "ab" + "cd" + "e" * 60
    assert blob_key(sha) == f"ab/cd/{sha}"
