import uuid
from datetime import UTC, datetime

import pytest

from services.api.errors import BadRequest
from services.api.requests import service

USER, OFFER = uuid.uuid4(), uuid.uuid4()


def test_request_id_depends_on_user_offer_inputs_and_key_not_on_key_order() -> None:
    same = service.derive_request_id(USER, OFFER, {"a": "1", "b": "2"}, None)
    assert service.derive_request_id(USER, OFFER, {"b": "2", "a": "1"}, None) == same
    assert service.derive_request_id(USER, OFFER, {"a": "1", "b": "3"}, None) != same
    assert service.derive_request_id(uuid.uuid4(), OFFER, {"a": "1", "b": "2"}, None) != same
    assert service.derive_request_id(USER, OFFER, {"a": "1", "b": "2"}, "run-2") != same


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-" + "0" * 32 + "-" + "0" * 16,
        "00-" + "g" * 32 + "-" + "1" * 16 + "-01",
    ],
)
def test_a_malformed_traceparent_is_not_propagated(value: str | None) -> None:
    assert service.valid_traceparent(value) is None


def test_traceparents_made_and_given() -> None:
    given = "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01"
    assert service.valid_traceparent(given) == given.lower()
    made = service.new_traceparent()
    assert service.valid_traceparent(made) == made
    assert made != service.new_traceparent()


def test_cursor_round_trip_and_foreign_cursors() -> None:
    created, request_id = datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC), uuid.uuid4()
    assert service.decode_cursor(service.encode_cursor(created, request_id)) == (
        created,
        request_id,
    )
    for cursor in ("zzz", "bm90IGEgY3Vyc29y", ""):
        with pytest.raises(BadRequest):
            service.decode_cursor(cursor)
