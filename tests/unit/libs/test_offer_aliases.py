"""Offer aliases in the catalog file: what an alias may be, and that it names one enabled offer."""

from typing import Any

import pytest
from pydantic import ValidationError

from libs.catalog import CatalogSpec, OfferSpec, catalog_data

OFFER = {"service": "a", "action": "b", "price": 1, "prompt_template": "{x}", "handler": "h.x"}


def _offer(**fields: Any) -> dict[str, Any]:
    return {**OFFER, **fields}


def _catalog(*offers: dict[str, Any]) -> CatalogSpec:
    return CatalogSpec.model_validate({"handlers": [{"id": "h.x"}], "offers": list(offers)})


@pytest.mark.parametrize(
    "alias", ["gpt-4o-mini", "relai-echo", "Llama3.1:8b", "x", "0", "a_b", "9" * 100]
)
def test_an_alias_is_a_model_name_without_a_slash(alias: str) -> None:
    assert OfferSpec.model_validate(_offer(aliases=[alias])).aliases == [alias]


def test_an_offer_has_no_alias_by_default_and_a_file_leaves_them_out() -> None:
    assert OfferSpec.model_validate(OFFER).aliases == []
    data = catalog_data(_catalog(OFFER, _offer(action="c", aliases=["gpt-4o"])))
    assert [o.get("aliases") for o in data["offers"]] == [None, ["gpt-4o"]]


@pytest.mark.parametrize(
    ("aliases", "problem"),
    [
        (["demo/ask"], "should match pattern"),
        (["-x"], "should match pattern"),
        ([".x"], "should match pattern"),
        (["a b"], "should match pattern"),
        (["é"], "should match pattern"),
        (["x\n"], "should match pattern"),
        ([""], "at least 1 character"),
        (["9" * 101], "at most 100 characters"),
        ([3], "valid string"),
        ("gpt-4o", "valid list"),
        (["gpt-4o", "other", "gpt-4o"], "alias 'gpt-4o' is listed twice"),
    ],
)
def test_a_bad_alias_is_refused_with_a_clear_message(aliases: Any, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        OfferSpec.model_validate(_offer(aliases=aliases))


def test_an_alias_names_one_enabled_offer_of_the_catalog() -> None:
    with pytest.raises(
        ValidationError, match="alias 'gpt-4o' is listed twice: by offer a/b and by offer a/c"
    ):
        _catalog(_offer(aliases=["x", "gpt-4o"]), _offer(action="c", aliases=["gpt-4o"]))
    # A disabled offer keeps aliases another has: the database holds them that way.
    spec = _catalog(
        _offer(aliases=["gpt-4o"], enabled=False), _offer(action="c", aliases=["gpt-4o"])
    )
    assert [o.aliases for o in spec.offers] == [["gpt-4o"], ["gpt-4o"]]
