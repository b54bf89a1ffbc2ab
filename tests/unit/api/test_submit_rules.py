import uuid
from datetime import UTC, datetime

import pytest

from services.api.errors import BadRequest
from services.api.requests import service
from services.api.submission import rules

USER, OFFER = uuid.uuid4(), uuid.uuid4()


def _id(user: uuid.UUID, offer: uuid.UUID, inputs: dict[str, str], key: str | None) -> uuid.UUID:
    return rules.derive_request_id(user, (str(offer), inputs), key)


def test_request_id_depends_on_user_offer_inputs_and_key_not_on_key_order() -> None:
    same = _id(USER, OFFER, {"a": "1", "b": "2"}, None)
    assert _id(USER, OFFER, {"b": "2", "a": "1"}, None) == same
    assert _id(USER, OFFER, {"a": "1", "b": "3"}, None) != same
    assert _id(uuid.uuid4(), OFFER, {"a": "1", "b": "2"}, None) != same
    assert _id(USER, uuid.uuid4(), {"a": "1", "b": "2"}, None) != same
    assert _id(USER, OFFER, {"a": "1", "b": "2"}, "run-2") != same


def test_request_ids_are_the_ones_earlier_versions_derived() -> None:
    """A client resubmitting across an upgrade still finds its request."""
    user = uuid.UUID("00000000-0000-0000-0000-000000000001")
    offer = uuid.UUID("00000000-0000-0000-0000-000000000002")
    assert _id(user, offer, {"text": "hi"}, None) == uuid.UUID(
        "9edbbb63-c352-51f8-87ff-96520946c6d4"
    )
    deal_key = ("deal", str(offer), {"text": "hi"}, sorted(["b/x", "a/y"]))
    assert rules.derive_request_id(user, deal_key, "k") == uuid.UUID(
        "99256e8c-ae06-52b8-a0e7-e4fbb22edf43"
    )


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
    assert rules.valid_traceparent(value) is None


def test_traceparents_made_and_given() -> None:
    given = "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01"
    assert rules.valid_traceparent(given) == given.lower()
    made = rules.new_traceparent()
    assert rules.valid_traceparent(made) == made
    assert made != rules.new_traceparent()


def test_cursor_round_trip_and_foreign_cursors() -> None:
    created, request_id = datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC), uuid.uuid4()
    assert service.decode_cursor(service.encode_cursor(created, request_id)) == (
        created,
        request_id,
    )
    for cursor in ("zzz", "bm90IGEgY3Vyc29y", ""):
        with pytest.raises(BadRequest):
            service.decode_cursor(cursor)
