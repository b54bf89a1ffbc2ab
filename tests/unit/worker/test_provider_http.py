import email.utils

import pytest

from services.worker.job import FileOutput
from services.worker.providers.errors import PermanentError, TransientError
from services.worker.providers.files import from_base64
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


def test_fill_replaces_each_placeholder_once_and_names_a_missing_file() -> None:
    values = {"{prompt}": "say {file:image}", "{file:image}": "QUJD", "{media_type:image}": "a/b"}
    template = {"p": "{prompt}", "img": "data:{media_type:image};base64,{file:image}"}
    # What the prompt says is not a placeholder: it is not filled in again.
    assert fill(template, values) == {"p": "say {file:image}", "img": "data:a/b;base64,QUJD"}
    assert fill("{other} {prompt}", "hi") == "{other} hi"
    with pytest.raises(PermanentError, match="request names the input file 'face', which this"):
        fill(["{file:face}"], values)


@pytest.mark.parametrize(
    ("value", "data", "media_type"),
    [
        ("QUJD", b"ABC", "image/png"),
        ("data:image/webp;base64,QUJD", b"ABC", "image/webp"),
        ("data:;base64,QUJD", b"ABC", "image/png"),
    ],
)
def test_base64_files_and_data_urls(value: str, data: bytes, media_type: str) -> None:
    assert from_base64(value, "x", "image/png") == FileOutput(data, media_type)


@pytest.mark.parametrize("value", ["", "QUJ", "not base64!", None, 3, "data:image/png,QUJD"])
def test_what_is_not_base64_is_named(value: object) -> None:
    with pytest.raises(PermanentError, match="unexpected answer from the provider: out.0 is not"):
        from_base64(value, "out.0", "image/png")
