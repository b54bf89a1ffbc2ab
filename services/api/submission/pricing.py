"""What a single-offer order reserves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.api.catalog.service import Offer


def priced(
    offer: Offer, *, input_texts: Sequence[str], max_output_tokens: int | None
) -> tuple[int, dict[str, Any] | None]:
    return offer.price, None
