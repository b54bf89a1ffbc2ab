import pytest

from libs.accounts import InvalidUserNameError, check_user_name, name_problem


@pytest.mark.parametrize("name", ["ada", "Zoë", "名前", "a b", "x" * 200])
def test_printable_names_are_accepted(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 201, "at most 200"),
        ("a\x00b", "NUL"),
        ("a\ud800b", "unpaired surrogates"),
        ("a\x1bb", "U+001B"),
        ("a\tb", "U+0009"),
        ("a\x7fb", "U+007F"),
        ("a\x80b", "U+0080"),
        ("a\x85b", "U+0085"),
        ("a\x9bb", "U+009B"),
        ("a\x9fb", "U+009F"),
    ],
)
def test_names_with_control_characters_or_unstorable_text_are_refused(
    name: str, problem: str
) -> None:
    reason = name_problem(name)
    assert reason is not None
    assert problem in reason
    with pytest.raises(InvalidUserNameError, match="a user name must"):
        check_user_name(name)
