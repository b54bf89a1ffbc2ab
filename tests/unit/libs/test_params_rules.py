"""What handler and offer params may carry (``libs.security.params``)."""

from typing import Any

import pytest

from libs.security.params import credential_problem, url_values, without_credentials


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"api_key": "x"}, "params.api_key"),
        ({"API-Key": "x"}, "params.API-Key"),
        ({"anthropic_api_key": "x"}, "params.anthropic_api_key"),
        ({"api_key_env": "RELAI_CONFIG_KEY"}, "params.api_key_env"),
        ({"token_env": "X"}, "params.token_env"),
        ({"~api_key": "x"}, "params.~api_key"),
        ({"body": {"password": "x"}}, "params.body.password"),
        ({"headers": {"Proxy-Authorization": "Basic eA=="}}, "params.headers.Proxy-Authorization"),
        ({"headers": {"X-Api-Key": "x"}}, "params.headers.X-Api-Key"),
        ({"headers": {"X-Anything": "Bearer abcdefgh"}}, "params.headers.X-Anything"),
        ({"headers": {"X-Anything": "sk-live-01234567"}}, "params.headers.X-Anything"),
        ({"list": [{"client_secret": "x"}]}, "params.list.0.client_secret"),
    ],
)
def test_credentials_and_environment_names_are_found_at_any_depth(
    params: dict[str, Any], where: str
) -> None:
    problem = credential_problem(params)
    assert problem is not None
    assert problem.startswith(f"{where}: ")


def test_ordinary_params_pass() -> None:
    params = {
        "integration": "openai",
        "model": "gpt-4o",
        "max_tokens": 256,
        "input_tokens": 1,
        "author": "ada",
        "headers": {"X-Trace": "1", "Accept": "application/json"},
        "body": {"temperature": 0.2, "stop": ["token"]},
    }
    assert credential_problem(params) is None


def test_url_values_finds_url_keys_and_strings_with_a_scheme() -> None:
    params = {
        "base_url": "https://a.example/v1",
        "callback_uri": 7,
        "endpoint": "b.example",
        "body": {"image": ["see http://c.example", "ftp://d.example/x"]},
        "model": "gpt",
    }
    assert list(url_values(params)) == [
        ("params.base_url", "https://a.example/v1"),
        ("params.callback_uri", 7),
        ("params.endpoint", "b.example"),
        ("params.body.image.1", "ftp://d.example/x"),
    ]


def test_without_credentials_drops_them_and_says_where() -> None:
    cleaned, dropped = without_credentials(
        {
            "model": "m",
            "api_key": "k",
            "headers": {"Authorization": "B", "X": "1"},
            "l": [{"token": 1}],
        }
    )
    assert cleaned == {"model": "m", "headers": {"X": "1"}, "l": [{}]}
    assert dropped == ["params.api_key", "params.headers.Authorization", "params.l.0.token"]
