"""How the errors of ``services.api.errors`` are declared in the OpenAPI document: the ``Error``
and ``InvalidInputs`` schemas, and the error responses every operation really answers."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import SkipJsonSchema, models_json_schema


def _absent_when_unset(schema: dict[str, Any]) -> None:
    """An optional field is left out of the answer, never sent as null: declare no default."""
    for field in schema.get("properties", {}).values():
        if "default" in field and field["default"] is None:
            del field["default"]


class _ErrorShape(BaseModel):
    model_config = ConfigDict(
        extra="allow", use_attribute_docstrings=True, json_schema_extra=_absent_when_unset
    )

    detail: str
    """What went wrong, for people."""
    code: str
    """What went wrong, for programs: ``not_found``, ``too_many_requests``..."""


class ErrorBody(_ErrorShape):
    """Every error answer: ``detail`` and ``code``, and the fields that matter to the error."""

    model_config = ConfigDict(title="Error")

    retry_after: int | SkipJsonSchema[None] = None
    """429: seconds to wait (also the ``Retry-After`` header)."""
    price: int | SkipJsonSchema[None] = None
    """402: what the refused submission costs."""
    limit: int | SkipJsonSchema[None] = None
    """429: the cap on unfinished requests that was reached; 413: the most bytes a file (or the
    files of one submission) may have."""
    status: str | SkipJsonSchema[None] = None
    """409: the status the request has already ended in."""


class FieldError(BaseModel):
    loc: list[str | int]
    """Where: ``body``, ``query``, ``path`` or ``header``, then the field's path."""
    msg: str
    type: str


class InvalidInputsBody(_ErrorShape):
    """422: a body, query or path that does not fit the call, or inputs its rules refuse."""

    model_config = ConfigDict(title="InvalidInputs")

    code: Literal["invalid_inputs"]
    fields: list[str] | SkipJsonSchema[None] = None
    """The fields a schema refused, each as ``inputs.text`` or ``query offset``; or the file
    inputs refused (not an accepted image, too large, not one of the caller's files)."""
    errors: list[FieldError] | SkipJsonSchema[None] = None
    """Each problem a schema found (never the value sent), the first 20."""
    more: int | SkipJsonSchema[None] = None
    """How many problems ``errors`` leaves out."""
    missing: list[str] | SkipJsonSchema[None] = None
    unknown: list[str] | SkipJsonSchema[None] = None
    not_strings: list[str] | SkipJsonSchema[None] = None
    not_text: list[str] | SkipJsonSchema[None] = None
    """Fields holding text Postgres cannot store (a NUL, an unpaired surrogate)."""
    unknown_addons: list[str] | SkipJsonSchema[None] = None
    limit: int | SkipJsonSchema[None] = None
    """The longest prompt allowed, when the rendered one is longer; the most output tokens the
    offer allows, when more are asked for; the most bytes a file input takes."""


SCHEMAS = "#/components/schemas/"
ERROR_REF = SCHEMAS + "Error"
INVALID_INPUTS_REF = SCHEMAS + "InvalidInputs"
_FASTAPI_ERRORS = ("HTTPValidationError", "ValidationError")
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}
AUTHENTICATED_ERRORS: dict[str, dict[str, Any]] = {
    "401": {
        "description": "No credentials, or unknown, revoked or expired ones",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "429": {
        "description": "The credential's rate limit is spent, or this address failed to "
        "authenticate too often",
        "headers": _RETRY_AFTER,
    },
    "503": {
        "description": "The database or the identity provider is unavailable; nothing was done",
        "headers": _RETRY_AFTER,
    },
}
"""What any call with credentials may answer."""
BODY_ERRORS: dict[str, dict[str, Any]] = {
    "400": {"description": "The body is not JSON text"},
    "413": {
        "description": "The body is larger than RELAI_MAX_BODY_BYTES (a multipart/form-data "
        "one with files: than RELAI_UPLOAD_MAX_BYTES more)"
    },
    "422": {"description": "The body does not fit the call"},
}
"""What any call with a body may answer."""


def _error_schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(ErrorBody, "serialization"), (InvalidInputsBody, "serialization")],
        ref_template=SCHEMAS + "{model}",
    )
    schemas: dict[str, Any] = top["$defs"]
    names = {"ErrorBody": "Error", "InvalidInputsBody": "InvalidInputs"}
    return {names.get(name, name): schema for name, schema in schemas.items()}


ERROR_SCHEMAS = _error_schemas()


def _error_content(code: str, response: dict[str, Any]) -> dict[str, Any]:
    """``response`` with the error body it declares, ours wherever FastAPI put its own or none."""
    content = response.get("content", {})
    schema = content.get("application/json", {}).get("schema")
    if schema and schema.get("$ref") != SCHEMAS + "HTTPValidationError":
        return response
    ref = INVALID_INPUTS_REF if code == "422" else ERROR_REF
    return {**response, "content": {"application/json": {"schema": {"$ref": ref}}}}


def with_error_responses(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (left unchanged) declaring the errors each operation really answers, in
    the one error shape: FastAPI's ``HTTPValidationError`` becomes ``InvalidInputs``, an
    error response declared without a body gets ``Error``, and every call with credentials
    (one whose ``security`` is not empty) declares 401, 429 and 503, every call with a body
    413 and 422."""
    secured_by_default = bool(document.get("security"))
    paths: dict[str, Any] = {}
    for path, item in document.get("paths", {}).items():
        paths[path] = dict(item)
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = {}
            if operation.get("security", None if secured_by_default else []) != []:
                responses |= AUTHENTICATED_ERRORS
            if "requestBody" in operation:
                responses |= BODY_ERRORS
            for code, response in operation["responses"].items():
                responses[code] = {**responses.get(code, {}), **response}
            responses = {
                code: _error_content(code, r) if code[0] in "45" else r
                for code, r in sorted(responses.items())
            }
            paths[path][method] = {**operation, "responses": responses}
    components = dict(document.get("components", {}))
    schemas = {
        name: schema
        for name, schema in components.get("schemas", {}).items()
        if name not in _FASTAPI_ERRORS
    }
    components["schemas"] = {**schemas, **ERROR_SCHEMAS}
    return {**document, "paths": paths, "components": components}
