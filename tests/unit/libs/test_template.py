import pytest

from libs.catalog import PromptTemplate, TemplateError


def test_renders_plain_names_in_order() -> None:
    template = PromptTemplate.parse("Hello {name}, you are {age}. Bye {name}!")
    assert template.variables == ("name", "age")
    assert template.render({"name": "Ada", "age": "36"}) == "Hello Ada, you are 36. Bye Ada!"


def test_braces_escape_and_values_are_not_reinterpreted() -> None:
    template = PromptTemplate.parse("{{literal}} {x}")
    assert template.variables == ("x",)
    assert template.render({"x": "{y.__class__}"}) == "{literal} {y.__class__}"


@pytest.mark.parametrize(
    "source",
    ["{x.__class__}", "{x[0]}", "{x!r}", "{x:>10}", "{0}", "{}", "{x", "}x{"],
)
def test_refuses_anything_but_plain_names(source: str) -> None:
    with pytest.raises(TemplateError):
        PromptTemplate.parse(source)
