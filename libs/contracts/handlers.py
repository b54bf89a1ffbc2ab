"""Handler ids, ``<module>.<method>`` (``openai.chat``): the one rule the catalog, the central
config and the worker's registry hold them to."""

import re
from typing import Annotated

from pydantic import StringConstraints

HANDLER_ID_PATTERN = r"^[a-z0-9_]+\.[a-z0-9_]+$"
"""Lower-case letters, digits and underscores, a dot, and again: what catalogs were written to."""

HANDLER_ID = re.compile(HANDLER_ID_PATTERN)

HandlerId = Annotated[str, StringConstraints(pattern=HANDLER_ID_PATTERN)]
"""A handler id in a pydantic model (a catalog entry, the config ``worker``'s keys)."""


def is_handler_id(value: str) -> bool:
    """Whether the whole of ``value`` is a handler id (``HANDLER_ID.match`` would let a trailing
    newline through)."""
    return HANDLER_ID.fullmatch(value) is not None
