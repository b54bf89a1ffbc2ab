"""The patterns the OpenAPI document gives request strings say what the API checks."""

import re

from hypothesis import example, given
from hypothesis import strategies as st

from libs.accounts import NAME_MAX, name_problem
from libs.db.text import text_problem
from services.api.text import STORABLE_PATTERN, USER_NAME_PATTERN

# Every character but lone surrogates (which no pattern can name, and no JSON generator sends).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=NAME_MAX)


@given(TEXT)
@example("")
@example(" \u00a0\u3000")
@example("\ufeff")
@example("ada\x85")
@example("\x1c")
def test_the_user_name_pattern_is_the_user_name_rule(name: str) -> None:
    assert (re.fullmatch(USER_NAME_PATTERN, name) is not None) == (name_problem(name) is None)


@given(TEXT)
@example("a\x00b")
def test_the_storable_pattern_is_the_storable_rule(text: str) -> None:
    assert (re.fullmatch(STORABLE_PATTERN, text) is not None) == (text_problem(text) is None)
