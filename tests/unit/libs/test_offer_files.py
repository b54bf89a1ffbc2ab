"""An offer's file inputs, as the catalog file declares them."""

import pytest
from pydantic import ValidationError

from libs.catalog import CatalogSpec, OfferSpec, catalog_data
from libs.catalog.file_inputs import FILE_MAX_BYTES, FileInputSpec
from libs.contracts.files import IMAGE_TYPES

OFFER = {
    "service": "img",
    "action": "edit",
    "price": 1,
    "prompt_template": "{prompt}",
    "handler": "h.x",
}


def test_a_file_input_defaults_to_any_image_within_the_default_bounds() -> None:
    offer = OfferSpec.model_validate({**OFFER, "files": {"image": {}}})
    assert offer.files == {"image": FileInputSpec()}
    spec = offer.files["image"]
    assert (tuple(spec.types), spec.max_bytes, spec.required) == (
        IMAGE_TYPES,
        FILE_MAX_BYTES,
        True,
    )


@pytest.mark.parametrize(
    ("files", "says"),
    [
        ({"prompt": {}}, "file inputs and template variables share names: prompt"),
        ({"1st": {}}, "files.1st.[key]"),
        ({"image": {"types": []}}, "files.image.types"),
        ({"image": {"types": ["image/png", "image/png"]}}, "a media type is listed twice"),
        ({"image": {"types": ["text/html"]}}, "files.image.types.0"),
        ({"image": {"max_bytes": 0}}, "files.image.max_bytes"),
        ({"image": {"max_bytes": "10"}}, "files.image.max_bytes"),
        ({"image": {"required": 1}}, "files.image.required"),
        ({"image": {"color": "red"}}, "files.image.color"),
        ({f"f{i}": {} for i in range(9)}, "files"),
    ],
)
def test_invalid_file_inputs_are_refused(files: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        OfferSpec.model_validate({**OFFER, "files": files})
    assert says in str(refused.value)


def test_a_deal_may_not_name_an_offer_with_file_inputs() -> None:
    with pytest.raises(ValidationError, match="which takes file inputs"):
        CatalogSpec.model_validate(
            {
                "handlers": [{"id": "h.x"}],
                "offers": [{**OFFER, "files": {"image": {}}}],
                "deals": [{"slug": "d", "offers": ["img/edit"]}],
            }
        )


def test_the_catalog_file_keeps_only_what_differs_from_the_defaults() -> None:
    spec = CatalogSpec.model_validate(
        {
            "handlers": [{"id": "h.x"}],
            "offers": [
                {
                    **OFFER,
                    "files": {"image": {}, "mask": {"required": False, "types": ["image/png"]}},
                }
            ],
        }
    )
    (offer,) = catalog_data(spec)["offers"]
    assert offer["files"] == {"image": {}, "mask": {"types": ["image/png"], "required": False}}
    assert CatalogSpec.model_validate(catalog_data(spec)) == spec
