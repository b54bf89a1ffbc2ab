import json
import uuid

from pydantic import ValidationError

from libs.contracts import TaskMessage
from services.worker._entries import (
    autoclaim_entries,
    describe_invalid,
    salvage,
    salvage_step,
)


def test_autoclaim_entries_splits_cursor_claimed_and_deleted() -> None:
    reply = [b"0-0", [(b"1-0", {b"m": b"a"})], [b"2-0"]]
    assert autoclaim_entries(reply) == (b"0-0", [(b"1-0", {b"m": b"a"})], [b"2-0"])
    assert autoclaim_entries([b"5-0", []]) == (b"5-0", [], [])


def test_describe_invalid_names_the_bad_fields() -> None:
    try:
        TaskMessage.model_validate_json(b'{"request_id": "nope", "attempt": 0}')
    except ValidationError as exc:
        text = describe_invalid(exc)
    assert "request_id" in text
    assert "attempt" in text
    assert describe_invalid(KeyError(b"m")) == "no 'm' field"


def test_salvage_reads_what_it_can() -> None:
    request_id = uuid.uuid4()
    body = {"request_id": str(request_id), "attempt": 3, "traceparent": "00-abc"}
    assert salvage({b"m": json.dumps(body).encode()}) == (request_id, 3, "00-abc")
    odd = {"request_id": str(request_id), "attempt": "x", "traceparent": 5}
    assert salvage({b"m": json.dumps(odd).encode()}) == (request_id, 1, None)


def test_salvage_gives_up_without_a_request_id() -> None:
    assert salvage({b"m": b"not json"}) is None
    assert salvage({b"m": b"[1, 2]"}) is None
    assert salvage({b"m": b'{"request_id": "nope"}'}) is None
    assert salvage({b"x": b"y"}) is None
    assert salvage(None) is None


def test_salvage_step_reads_a_valid_step_only() -> None:
    assert salvage_step({b"m": b'{"request_id": "x", "step": 2}'}) == 2
    assert salvage_step({b"m": b'{"request_id": "x"}'}) is None
    assert salvage_step({b"m": b'{"step": -1}'}) is None
    assert salvage_step({b"m": b'{"step": true}'}) is None
    assert salvage_step({b"m": b"[1]"}) is None
    assert salvage_step(None) is None
