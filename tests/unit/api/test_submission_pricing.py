"""``priced``: what every door reserves for a single offer, and the 422 for an output cap above
the offer's; and what a cancel charges once output has streamed."""

import uuid
from decimal import Decimal
from typing import Any

import pytest

from libs.catalog import PromptTemplate
from services.api.catalog.service import Offer
from services.api.errors import InvalidInputs
from services.api.submission import charged_when_cancelled_streaming, priced, request_texts


def _offer(**prices: Any) -> Offer:
    return Offer(
        id=uuid.uuid4(),
        service="llm",
        action="chat",
        price=2,
        template=PromptTemplate.parse("{text}"),
        handler="echo.text",
        create_qty=1,
        params={},
        **prices,
    )


TOKENS = {"input_price": Decimal(100), "output_price": Decimal(250), "max_output_tokens": 4096}


def test_a_fixed_price_is_the_offers_price_whatever_is_asked() -> None:
    assert priced(_offer(), input_texts=["hi"], max_output_tokens=None) == (2, None)
    assert priced(_offer(), input_texts=["hi"], max_output_tokens=10**9) == (2, None)
    capped = _offer(max_output_tokens=5)
    assert priced(capped, input_texts=["hi"], max_output_tokens=50) == (2, None)


def test_token_prices_reserve_the_input_bound_and_the_offers_output_cap() -> None:
    # "one two three": at most 13 + 4 + 3 = 20 input tokens; 4096 output tokens by default.
    price, pricing = priced(_offer(**TOKENS), input_texts=["one two three"], max_output_tokens=None)
    assert price == 2 + -(-(20 * 100 + 4096 * 250) // 1000)
    assert pricing == {"base": 2, "input_per_1k": "100", "output_per_1k": "250"}
    # A request that asks for fewer output tokens reserves less.
    price, _ = priced(_offer(**TOKENS), input_texts=["one two three"], max_output_tokens=10)
    assert price == 2 + 5  # ceil((2000 + 2500) / 1000)


def test_input_prices_alone_need_no_output_cap() -> None:
    offer = _offer(input_price=Decimal("0.5"))
    assert priced(offer, input_texts=["a" * 993], max_output_tokens=None) == (
        2 + 1,  # 1000 tokens at most
        {"base": 2, "input_per_1k": "0.5", "output_per_1k": "0"},
    )


def test_more_output_tokens_than_the_offer_allows_is_422_naming_the_cap() -> None:
    with pytest.raises(InvalidInputs) as refused:
        priced(_offer(**TOKENS), input_texts=["hi"], max_output_tokens=5000)
    assert refused.value.status_code == 422
    assert refused.value.message == "max_tokens is 5000; this offer allows at most 4096"
    assert refused.value.extra == {"limit": 4096}
    with pytest.raises(InvalidInputs, match="at least 1"):
        priced(_offer(**TOKENS), input_texts=["hi"], max_output_tokens=0)


def test_a_requests_texts_are_its_messages_or_its_prompt() -> None:
    assert request_texts("last", None) == ["last"]
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "last"}]
    assert request_texts("last", messages) == ["be brief", "last"]


def test_a_cancel_after_streaming_charges_the_price_or_the_input_only() -> None:
    assert charged_when_cancelled_streaming(price=7, pricing=None, input_texts=["x"]) == 7
    pricing = {"base": 2, "input_per_1k": "100", "output_per_1k": "250"}
    # 20 input tokens at most: 2 + ceil(2000 / 1000), no output counted.
    assert (
        charged_when_cancelled_streaming(price=1028, pricing=pricing, input_texts=["one two three"])
        == 4
    )
    assert charged_when_cancelled_streaming(price=3, pricing=pricing, input_texts=["x" * 99]) == 3
