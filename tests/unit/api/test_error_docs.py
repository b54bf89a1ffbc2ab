"""The OpenAPI document declares the errors the API really answers: every 4xx and 5xx response
in it names the one error shape, and real error bodies validate against what it declares."""

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from libs.catalog import PromptTemplate
from services.api.admin.schemas import NewUserBody
from services.api.api import router
from services.api.catalog.deals import Deal, DealStep
from services.api.catalog.openapi import build_document, install_openapi
from services.api.catalog.service import Offer
from services.api.error_docs import ERROR_REF, INVALID_INPUTS_REF
from services.api.errors import (
    Conflict,
    InsufficientCredits,
    InvalidInputs,
    RelaiError,
    TooManyRequests,
    http_error_handler,
    relai_error_handler,
    validation_error_handler,
)
from services.api.submission import check_string_fields
from tests.openapi_check import assert_openapi_3

METHODS = {"get", "put", "post", "delete", "patch"}


def _offer() -> Offer:
    return Offer(
        id=uuid.uuid4(),
        service="demo",
        action="greet",
        price=3,
        template=PromptTemplate.parse("Hello {name}"),
        handler="echo.text",
        create_qty=1,
        params={},
    )


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = FastAPI(title="Relai", version="0", openapi_url=None)
    app.include_router(router)
    install_openapi(app)
    offer = _offer()
    deal = Deal(
        id=uuid.uuid4(),
        slug="bundle",
        price=None,
        price_modifier=Decimal(0),
        addons_modifier=Decimal(0),
        pipeline=False,
        steps=(DealStep(offer, None),),
        addons={},
    )
    return build_document(app.openapi(), [offer], [deal])


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _error_refs(schema: dict[str, Any]) -> set[str]:
    """The error models ``schema`` is: itself, or one of its ``allOf``."""
    refs = {schema.get("$ref", "")} | {part.get("$ref", "") for part in schema.get("allOf", [])}
    return refs & {ERROR_REF, INVALID_INPUTS_REF}


def test_every_error_response_is_the_error_shape(document: dict[str, Any]) -> None:
    assert_openapi_3(document)
    checked = 0
    for method, path, operation in _operations(document):
        for code, response in operation["responses"].items():
            if code[0] not in "45":
                continue
            schema = response["content"]["application/json"]["schema"]
            expected = INVALID_INPUTS_REF if code == "422" else ERROR_REF
            assert _error_refs(schema) == {expected}, (method, path, code, schema)
            checked += 1
    assert checked > 100
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert "HTTPValidationError" not in str(document)


def test_the_statuses_each_kind_of_call_may_answer(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        codes = set(operation["responses"])
        if operation.get("security") != []:
            assert {"401", "429", "503"} <= codes, (method, path)
        if "requestBody" in operation:
            assert {"400", "413", "422"} <= codes, (method, path)
        if path.startswith("/admin"):
            assert "403" in codes, (method, path)
    for path in ("/svc/demo/greet", "/deal/bundle", "/svc/{service_name}/{action}", "/ask"):
        assert {"400", "402", "404", "422", "429"} <= set(
            document["paths"][path]["post"]["responses"]
        )
    assert set(document["paths"]["/health"]["get"]["responses"]) == {"200", "503"}
    assert document["paths"]["/health"]["get"]["security"] == []


def _validate(body: Any, ref: str, document: dict[str, Any]) -> None:
    jsonschema.validate(body, {"$ref": ref, "components": document["components"]})


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """Our error handlers in front of routes that fail the way the API's do."""
    app = FastAPI()
    app.add_exception_handler(RelaiError, relai_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)

    @app.post("/users")
    async def create(body: NewUserBody) -> None:
        pass

    @app.get("/users")
    async def listing(limit: int = 1) -> None:
        pass

    @app.post("/raise/{kind}")
    async def fail(kind: str) -> None:
        raise {
            "credits": InsufficientCredits("costs 3", price=3),
            "rate": TooManyRequests("slow down", retry_after=2),
            "cap": TooManyRequests("too many", retry_after=1, limit=5),
            "conflict": Conflict("ended", status="succeeded"),
            "inputs": InvalidInputs("bad", missing=["a"], unknown=["b"]),
        }[kind]

    @app.post("/inputs")
    async def inputs() -> None:
        check_string_fields({"a": 1}, ["a"], noun="fields")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.mark.parametrize(
    ("request_args", "status"),
    [
        ({"method": "POST", "url": "/users", "json": {"name": "", "credits": True, "x": 1}}, 422),
        ({"method": "POST", "url": "/users", "content": b"{not json"}, 422),
        ({"method": "POST", "url": "/users", "json": [1] * 50}, 422),
        ({"method": "GET", "url": "/users?limit=many"}, 422),
        ({"method": "POST", "url": "/inputs"}, 422),
        ({"method": "POST", "url": "/raise/inputs"}, 422),
    ],
)
async def test_a_real_422_body_fits_the_declared_schema(
    client: httpx.AsyncClient, document: dict[str, Any], request_args: dict[str, Any], status: int
) -> None:
    response = await client.request(**request_args)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == "invalid_inputs"
    _validate(body, INVALID_INPUTS_REF, document)
    with pytest.raises(jsonschema.ValidationError):
        _validate({**body, "code": "not_found"}, INVALID_INPUTS_REF, document)


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("POST", "/raise/credits", 402),
        ("POST", "/raise/rate", 429),
        ("POST", "/raise/cap", 429),
        ("POST", "/raise/conflict", 409),
        ("GET", "/nowhere", 404),
        ("DELETE", "/users", 405),
    ],
)
async def test_other_error_bodies_fit_the_declared_schema(
    client: httpx.AsyncClient, document: dict[str, Any], method: str, url: str, status: int
) -> None:
    response = await client.request(method, url)
    assert response.status_code == status
    _validate(response.json(), ERROR_REF, document)
    with pytest.raises(jsonschema.ValidationError):
        _validate({"detail": "no code"}, ERROR_REF, document)


async def test_405_names_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    response = await client.request("DELETE", "/users")
    assert response.headers["allow"] == "GET, POST"


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/admin/users", "GET, POST"),
        ("/svc/demo/echo", "GET, POST"),
        ("/svc/request/3f1c0e4e-1f6b-4f1a-9d5e-2b7c8a9d0e1f", "GET"),
        ("/svc/request/3f1c0e4e-1f6b-4f1a-9d5e-2b7c8a9d0e1f/cancel", "POST"),
    ],
)
async def test_the_api_answers_405_with_every_method_of_the_path(path: str, allow: str) -> None:
    """A wrong method is refused by routing, before any credential is looked at. Paths under
    ``/svc/request/`` belong to the requests API: no offer route takes them."""
    app = FastAPI()
    app.add_exception_handler(HTTPException, http_error_handler)
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.request("PATCH", path)
    assert (response.status_code, response.headers["allow"]) == (405, allow)
    assert response.json()["code"] == "method_not_allowed"
