import json
import uuid
from typing import Any

import pytest
from fastapi import FastAPI

from libs.catalog import PromptTemplate
from libs.catalog.file_inputs import FileInputSpec
from services.api.api import router
from services.api.catalog.openapi import GENERIC_SUBMIT, install_openapi, with_offers
from services.api.catalog.service import Offer
from services.api.text import STORABLE_PATTERN
from tests.openapi_check import assert_openapi_3


def _offer(
    service: str,
    action: str,
    template: str = "{text}",
    files: dict[str, FileInputSpec] | None = None,
) -> Offer:
    return Offer(
        id=uuid.uuid4(),
        service=service,
        action=action,
        price=3,
        template=PromptTemplate.parse(template),
        handler="echo.text",
        create_qty=2,
        params={"secret": "operator-only"},
        files=files or {},
    )


@pytest.fixture(scope="module")
def generic() -> dict[str, Any]:
    app = FastAPI(title="Relai", version="0", openapi_url=None)
    app.include_router(router)
    install_openapi(app)
    return app.openapi()


def test_each_offer_gets_its_submit_path_with_its_inputs(generic: dict[str, Any]) -> None:
    greet = _offer("demo", "greet", "Hello {name}, you are {age}. Bye {name}.")
    document = with_offers(generic, [greet])
    operation = document["paths"]["/svc/demo/greet"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": STORABLE_PATTERN},
            "age": {"type": "string", "pattern": STORABLE_PATTERN},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    assert operation["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Submitted"
    }
    headers = {p["name"] for p in operation["parameters"]}
    assert headers == {"Idempotency-Key", "traceparent", "Relai-Webhook-Url", "Relai-Tier"}
    view = document["paths"]["/svc/demo/greet"]["get"]
    assert view["parameters"] == []
    assert view["responses"]["200"] == generic["paths"][GENERIC_SUBMIT]["get"]["responses"]["200"]
    assert view["operationId"] != generic["paths"][GENERIC_SUBMIT]["get"]["operationId"]
    assert_openapi_3(document)


def test_the_generic_document_is_kept_and_left_unchanged(generic: dict[str, Any]) -> None:
    before = json.dumps(generic, sort_keys=True)
    document = with_offers(generic, [_offer("demo", "echo")])
    assert json.dumps(generic, sort_keys=True) == before
    assert "/svc/demo/echo" not in generic["paths"]
    assert document["paths"][GENERIC_SUBMIT] == generic["paths"][GENERIC_SUBMIT]
    assert set(document["paths"]) == set(generic["paths"]) | {"/svc/demo/echo"}
    assert with_offers(generic, []) == generic


def test_the_operator_fields_stay_out(generic: dict[str, Any]) -> None:
    document = with_offers(generic, [_offer("demo", "greet", "Secret preamble {name}")])
    text = json.dumps(document["paths"]["/svc/demo/greet"])
    assert "Secret preamble" not in text
    assert "echo.text" not in text
    assert "operator-only" not in text


def test_operation_ids_stay_unique_when_names_run_together(generic: dict[str, Any]) -> None:
    document = with_offers(generic, [_offer("a_b", "c"), _offer("a", "b_c")])
    ids = {document["paths"][p]["post"]["operationId"] for p in ("/svc/a_b/c", "/svc/a/b_c")}
    assert len(ids) == 2
    assert_openapi_3(document)


def test_the_generic_document_is_valid(generic: dict[str, Any]) -> None:
    assert_openapi_3(generic)
    assert {"get", "post"} <= set(generic["paths"][GENERIC_SUBMIT])
    assert "/openapi.json" not in generic["paths"]
    assert "/docs" not in generic["paths"]


def test_install_refuses_an_app_that_serves_its_own_document() -> None:
    with pytest.raises(ValueError, match="openapi_url=None"):
        install_openapi(FastAPI())


def test_an_offer_with_file_inputs_takes_multipart_or_file_ids(generic: dict[str, Any]) -> None:
    files = {
        "image": FileInputSpec(types=["image/png", "image/webp"]),
        "mask": FileInputSpec(required=False),
    }
    document = with_offers(generic, [_offer("img", "edit", "{prompt}", files)])
    content = document["paths"]["/svc/img/edit"]["post"]["requestBody"]["content"]
    file_id = {"type": "string", "pattern": "^file-[0-9a-f]{32}$"}
    assert content["application/json"]["schema"]["properties"] == {
        "prompt": {"type": "string", "pattern": STORABLE_PATTERN},
        "image": file_id,
        "mask": file_id,
    }
    assert content["application/json"]["schema"]["required"] == ["prompt", "image"]
    multipart = content["multipart/form-data"]
    assert multipart["schema"]["properties"]["image"] == {"type": "string", "format": "binary"}
    assert multipart["schema"]["required"] == ["prompt", "image"]
    assert multipart["schema"]["additionalProperties"] is False
    assert multipart["encoding"]["image"] == {"contentType": "image/png, image/webp"}
    assert (
        "multipart/form-data"
        not in (
            with_offers(generic, [_offer("demo", "echo")])["paths"]["/svc/demo/echo"]["post"][
                "requestBody"
            ]["content"]
        )
    )
    assert_openapi_3(document)


def test_the_files_routes_are_documented(generic: dict[str, Any]) -> None:
    paths = generic["paths"]
    upload = paths["/files"]["post"]
    assert set(upload["requestBody"]["content"]) == {"multipart/form-data"}
    assert {"201", "400", "413", "422"} <= set(upload["responses"])
    assert {"get"} <= set(paths["/files"])
    assert {"get", "delete"} <= set(paths["/files/{file_id}"])
    assert "409" in paths["/files/{file_id}"]["delete"]["responses"]
    content = paths["/files/{file_id}/content"]["get"]
    assert {"200", "304", "403", "404"} <= set(content["responses"])
    assert "image/png" in content["responses"]["200"]["content"]
    assert "ETag" in content["responses"]["200"]["headers"]
    assert content["security"] == [{"bearer": []}, {}]
    assert {p["name"] for p in content["parameters"]} == {"file_id", "expires", "signature"}
    assert "404" in paths["/files/{file_id}/url"]["post"]["responses"]
