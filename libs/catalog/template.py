"""Prompt templates with plain ``{name}`` substitution and nothing else.

``str.format`` would allow ``{x.__class__}``, ``{x[0]}``, ``{x!r}`` and format specs; a template
here may only name variables, so a template is parsed once and refused if it asks for more.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from string import Formatter


class TemplateError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    source: str
    parts: tuple[tuple[str, str | None], ...]
    """(literal text, variable name or None), in order."""
    variables: tuple[str, ...]
    """Distinct variable names, in order of first appearance."""

    @classmethod
    def parse(cls, source: str) -> "PromptTemplate":
        parts: list[tuple[str, str | None]] = []
        variables: list[str] = []
        try:
            parsed = list(Formatter().parse(source))
        except ValueError as exc:
            raise TemplateError(f"malformed template: {exc}") from exc
        for literal, name, spec, conversion in parsed:
            if name is None:
                parts.append((literal, None))
                continue
            if conversion is not None or spec:
                raise TemplateError(f"template field {{{name}}} may not use conversions or specs")
            if not name.isidentifier():
                raise TemplateError(
                    f"template field {{{name}}} must be a plain name "
                    "(no attribute or index access, no positional fields)"
                )
            parts.append((literal, name))
            if name not in variables:
                variables.append(name)
        return cls(source=source, parts=tuple(parts), variables=tuple(variables))

    def render(self, values: Mapping[str, str]) -> str:
        out: list[str] = []
        for literal, name in self.parts:
            out.append(literal)
            if name is not None:
                out.append(values[name])
        return "".join(out)
