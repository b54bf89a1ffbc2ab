import email.utils

import pytest

from services.worker.providers.errors import PermanentError, TransientError
from services.worker.providers.http import parse_retry_after
from services.worker.providers.http_json import fill
from services.worker.providers.params import ProviderParams


@pytest.mark.parametrize(
    ("value", "seconds"), [("3", 3.0), ("0.5", 0.5), (" 7 ", 7.0), ("-2", 0.0), ("soon", None)]
)
def test_retry_after_in_seconds(value: str, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_retry_after_as_an_http_date() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(None) is None


def test_errors_mask_the_key() -> None:
    error = TransientError("bad key sk-123 given", secret="sk-123", retry_after=2)
    assert str(error) == "bad key *** given"
    assert error.retry_after == 2
    assert str(PermanentError("sk-123", secret="sk-123")) == "***"


def test_params_name_what_is_wrong() -> None:
    with pytest.raises(PermanentError, match=r"invalid params: timeout_s: .*greater than 0"):
        ProviderParams.parse({"timeout_s": 0})
    assert ProviderParams.parse({"other": "ignored"}).max_retries == 3


def test_fill_replaces_the_prompt_in_strings_only() -> None:
    template = {"q": "Q: {prompt}", "n": 1, "list": ["{prompt}", None], "{prompt}": True}
    assert fill(template, "hi") == {"q": "Q: hi", "n": 1, "list": ["hi", None], "hi": True}
