"""Prompt templates as catalog entries: a named template with ``{variables}``, its category,
tags and an example, filled by name (the chat gateway's refiner fills them).

A template is parsed by ``libs.catalog.template``: plain ``{name}`` substitution only, so that
filling one never reads an attribute or an index of a value. Its example input names every
variable and nothing else, so that the example always renders. ``usage_count`` is runtime data
of the database (``libs.catalog.prompt_store``), never part of an entry.
"""

from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from libs.catalog.template import PromptTemplate
from libs.db.text import storable

SLUG = r"^[a-z0-9][a-z0-9_-]*$"
NAME_MAX = 100
CATEGORY_MAX = 50
DESCRIPTION_MAX = 2000
TEMPLATE_MAX = 20_000
"""The longest template, and the longest example output, in characters."""
VARIABLES_MAX = 100
"""The most variables a template may have."""
VALUE_MAX = 20_000
"""The longest value of an example input."""
TAGS_MAX = 20
DEFAULT_CATEGORY = "general"


NO_NUL = "^[^\\u0000]*$"
"""Storable text as a JSON Schema pattern (an unpaired surrogate, which no pattern can name, is
refused too)."""
Text = Annotated[str, BeforeValidator(storable)]
FreeText = Annotated[Text, Field(json_schema_extra={"pattern": NO_NUL})]
# A slug's pattern refuses what Postgres cannot store.
TemplateName = Annotated[str, Field(min_length=1, max_length=NAME_MAX, pattern=SLUG)]
Category = Annotated[str, Field(min_length=1, max_length=CATEGORY_MAX, pattern=SLUG)]
Tag = Annotated[str, Field(min_length=1, max_length=CATEGORY_MAX, pattern=SLUG)]
Variable = Annotated[FreeText, Field(min_length=1, max_length=NAME_MAX)]
Value = Annotated[FreeText, Field(max_length=VALUE_MAX)]


def _text_to_text(schema: dict[str, Any]) -> None:
    """A mapping of storable names to storable values, as JSON Schema says it."""
    (value,) = schema.pop("patternProperties").values()
    schema["additionalProperties"] = value
    schema["propertyNames"] = {**schema.get("propertyNames", {}), "pattern": NO_NUL}


Values = Annotated[
    dict[Variable, Value],
    Field(max_length=VARIABLES_MAX, json_schema_extra=_text_to_text),
]
"""A value for each variable of a template."""


class VariablesError(ValueError):
    """Values that do not fill a template: some of its variables are missing, or some values
    name no variable of it."""

    def __init__(self, missing: list[str], unknown: list[str], variables: tuple[str, ...]):
        self.missing = missing
        self.unknown = unknown
        problems = []
        if missing:
            problems.append("missing variables: " + ", ".join(missing))
        if unknown:
            problems.append("unknown variables: " + ", ".join(unknown))
        takes = ", ".join(variables) if variables else "none"
        super().__init__(f"{'; '.join(problems)} (the template takes: {takes})")


def fill(template: PromptTemplate, values: Mapping[str, str]) -> str:
    """``template`` filled with ``values``, which must name each of its variables and nothing
    else (``VariablesError`` names the ones missing and the ones unknown)."""
    missing = [name for name in template.variables if name not in values]
    unknown = sorted(name for name in values if name not in template.variables)
    if missing or unknown:
        raise VariablesError(missing, unknown, template.variables)
    return template.render(values)


class PromptTemplateSpec(BaseModel):
    """One prompt template of the catalog file (and of ``PUT /admin/prompt-templates``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: TemplateName
    """Its name, unique: lowercase letters, digits, ``-`` and ``_``."""
    description: Annotated[FreeText, Field(max_length=DESCRIPTION_MAX)] = ""
    category: Category = DEFAULT_CATEGORY
    template: Annotated[FreeText, Field(min_length=1, max_length=TEMPLATE_MAX)]
    """The text, with ``{variables}``: plain names only (no attribute or index access, no
    conversions or format specs); ``{{`` and ``}}`` are literal braces."""
    example_input: Values = Field(default_factory=dict)
    """A value for each of the template's variables, and for nothing else."""
    example_output: Annotated[FreeText, Field(max_length=TEMPLATE_MAX)] = ""
    """What a model answered (or should answer) to the example, for people."""
    tags: Annotated[list[Tag], Field(max_length=TAGS_MAX)] = Field(default_factory=list)
    active: StrictBool = True
    """Only an active template is filled."""

    @field_validator("template")
    @classmethod
    def _template_is_safe(cls, value: str) -> str:
        variables = PromptTemplate.parse(value).variables
        if len(variables) > VARIABLES_MAX:
            raise ValueError(f"a template may have at most {VARIABLES_MAX} variables")
        return value

    @field_validator("tags")
    @classmethod
    def _tags_once(cls, value: list[str]) -> list[str]:
        twice = sorted({tag for tag in value if value.count(tag) > 1})
        if twice:
            raise ValueError(f"tag {twice[0]!r} is listed twice")
        return value

    @model_validator(mode="after")
    def _example_renders(self) -> Self:
        try:
            fill(self.parsed(), self.example_input)
        except VariablesError as exc:
            raise ValueError(f"example_input does not render the template: {exc}") from None
        return self

    def parsed(self) -> PromptTemplate:
        return PromptTemplate.parse(self.template)


def check_names(templates: list[PromptTemplateSpec]) -> None:
    """Each template once in a catalog."""
    seen: set[str] = set()
    for template in templates:
        if template.name in seen:
            raise ValueError(f"prompt template {template.name!r} is defined twice")
        seen.add(template.name)
