"""How a pipeline step's output becomes the next step's input.

A pipeline step passes on (its *output*): its own results (``overwrite``), the previous output
followed by its own results (``extend``), or the previous output unchanged (``pass_through``);
the first step's previous output is empty. The next step's template is rendered with the deal's
inputs for every variable the client gave, and with the previous output as text (its results,
each a string or else JSON, joined by blank lines) for every other variable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from libs.catalog.spec import PipelineMode
from libs.catalog.template import PromptTemplate

OUTPUT_SEPARATOR = "\n\n"


def passed_on(
    mode: PipelineMode, previous: Sequence[Any] | None, results: Sequence[Any]
) -> list[Any]:
    before = list(previous or [])
    if mode == "overwrite":
        return list(results)
    if mode == "extend":
        return before + list(results)
    return before


def as_text(output: Sequence[Any]) -> str:
    return OUTPUT_SEPARATOR.join(
        r if isinstance(r, str) else orjson.dumps(r).decode() for r in output
    )


def render_next(
    template: PromptTemplate, inputs: Mapping[str, str], previous: Sequence[Any]
) -> str:
    text = as_text(previous)
    return template.render({v: inputs[v] if v in inputs else text for v in template.variables})
