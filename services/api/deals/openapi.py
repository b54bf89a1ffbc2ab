"""A ``POST /deal/<slug>`` path per enabled deal in the OpenAPI document, with its inputs."""

from collections.abc import Iterable
from typing import Any

from services.api.catalog.deals import Deal
from services.api.deals.schemas import deal_inputs_schema, deal_path
from services.api.submission import SUBMIT_ERRORS

GENERIC_DEAL = "/deal/{slug}"
DEAL_SUBMITTED_REF = "#/components/schemas/DealSubmitted"


def _operation(deal: Deal, parameters: list[Any], operation_id: str) -> dict[str, Any]:
    addons: dict[str, Any] = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
    if deal.addons:
        addons["items"]["enum"] = list(deal.addons)
    return {
        "tags": ["deals"],
        "summary": f"Submit the deal {deal.slug}",
        "description": (
            f"Costs {deal.base_price} credits plus the selected add-ons. "
            "Answers 202 with the request's id, price and steps."
        ),
        "operationId": operation_id,
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "inputs": deal_inputs_schema(deal).model_dump(by_alias=True),
                            "addons": addons,
                        },
                        "required": ["inputs"],
                        "additionalProperties": False,
                    }
                }
            },
        },
        "responses": {
            "202": {
                "description": "Accepted",
                "content": {"application/json": {"schema": {"$ref": DEAL_SUBMITTED_REF}}},
            },
            **SUBMIT_ERRORS,
            "422": {
                "description": "Missing, unknown or non-string inputs, unknown add-ons, "
                "or a refused Relai-Webhook-Url"
            },
        },
    }


def with_deals(document: dict[str, Any], deals: Iterable[Deal]) -> dict[str, Any]:
    """``document`` (left unchanged) with ``POST /deal/<slug>`` for each deal."""
    paths: dict[str, Any] = dict(document.get("paths", {}))
    generic = paths.get(GENERIC_DEAL, {}).get("post", {})
    headers = [p for p in generic.get("parameters", []) if p.get("in") != "path"]
    taken = {
        op["operationId"]
        for item in paths.values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    }
    for deal in deals:
        operation_id = base = f"deal_{deal.slug.replace('-', '_')}"
        suffix = 1
        while operation_id in taken:
            suffix += 1
            operation_id = f"{base}_{suffix}"
        taken.add(operation_id)
        paths[deal_path(deal.slug)] = {"post": _operation(deal, headers, operation_id)}
    return {**document, "paths": paths}
