"""A structural check of OpenAPI 3 documents, shared by the unit and integration tests."""

import re
from typing import Any

_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_PATH_ITEM_KEYS = _METHODS | {"$ref", "summary", "description", "servers", "parameters"}


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node: Any = document
    for token in ref[2:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{ref} does not resolve"
        assert token in node, f"{ref} does not resolve"
        node = node[token]
    return node


def assert_openapi_3(document: dict[str, Any]) -> None:
    """The structure of an OpenAPI 3 document, and every ``$ref`` resolving inside it."""
    assert re.fullmatch(r"3\.\d+\.\d+", document["openapi"])
    assert isinstance(document["info"]["title"], str)
    assert isinstance(document["info"]["version"], str)
    operation_ids: list[str] = []
    for path, item in document["paths"].items():
        assert path.startswith("/"), path
        assert set(item) <= _PATH_ITEM_KEYS, (path, set(item) - _PATH_ITEM_KEYS)
        for method in _METHODS & set(item):
            operation = item[method]
            operation_ids.append(operation["operationId"])
            responses = operation["responses"]
            assert responses, (path, method)
            for code, response in responses.items():
                assert re.fullmatch(r"[1-5](\d\d|XX)|default", code), (path, method, code)
                assert isinstance(response["description"], str), (path, method, code)
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{([^}]+)}", path)), (path, method)
            if "requestBody" in operation:
                assert operation["requestBody"]["content"], (path, method)
    assert len(operation_ids) == len(set(operation_ids)), "operationIds are not unique"
    for ref in _refs(document):
        _resolve(document, ref)
