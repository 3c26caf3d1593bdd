"""`GET /openapi.json`: an OpenAPI 3.1 description made from the same
`Operation` declarations the routes are made of (qms/openapi.py).

The document is validated against the official OpenAPI 3.1 schema
(tests/data/openapi-3.1.schema.json: OAI/OpenAPI-Specification's
schemas/v3.1/schema.json, 2022-10-07, Apache-2.0) and every schema in it
against JSON Schema 2020-12; its paths are compared with the app's routes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from starlette.routing import Route

from qms.app import create_app
from qms.http import API_PREFIX
from tests.conftest import ApiKit
from tests.support import TOKENS, make_config

pytestmark = pytest.mark.redis

OFFICIAL_SCHEMA = Path(__file__).parent / "data" / "openapi-3.1.schema.json"


async def _document(api: ApiKit) -> dict[str, Any]:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert isinstance(document, dict)
    return document


def _schemas(node: Any) -> list[dict[str, Any]]:
    """Every Schema Object in the document (under a "schema" key or in components)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema" and isinstance(value, dict):
                found.append(value)
            else:
                found += _schemas(value)
    elif isinstance(node, list):
        for item in node:
            found += _schemas(item)
    return found


async def test_the_document_is_valid_openapi_3_1(api: ApiKit) -> None:
    document = await _document(api)
    official = json.loads(OFFICIAL_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(official).validate(document)
    assert document["openapi"].startswith("3.1.")
    schemas = _schemas(document) + list(document["components"]["schemas"].values())
    assert len(schemas) > 50
    for schema in schemas:
        jsonschema.Draft202012Validator.check_schema(schema)


def _served(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app([make_config(tmp_path)], "redis://unused")
    served = set()
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/api/v1/"):
            for method in route.methods or ():
                if method != "HEAD":
                    served.add((route.path, method.lower()))
    return served


async def test_every_api_route_is_described_and_nothing_else(api: ApiKit, tmp_path: Path) -> None:
    document = await _document(api)
    described = {(path, method) for path, ops in document["paths"].items() for method in ops}
    served = _served(tmp_path)
    assert len(served) == 32
    assert described == served


async def test_every_operation_says_who_what_and_how_it_fails(api: ApiKit) -> None:
    document = await _document(api)
    error = {"$ref": "#/components/schemas/Error"}
    for path, ops in document["paths"].items():
        assert path.startswith(API_PREFIX)
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            assert op["summary"], where
            names = [p["name"] for p in op["parameters"] if p["in"] == "path"]
            assert names == [n.strip("{}") for n in path.split("/") if n.startswith("{")] or (
                "reports" in path
            ), where
            errors = [s for s in op["responses"] if s[0] in "45"]
            assert {"404", "413", "503"} <= set(errors), where
            if op["security"]:
                assert {"401", "403"} <= set(errors) and op["x-roles"], where
            if "requestBody" in op:
                assert {"400", "422"} <= set(errors), where
            for status in errors:
                assert op["responses"][status]["content"]["application/json"]["schema"] == error


async def test_the_contracts_ticket_and_error_shape_are_components(api: ApiKit) -> None:
    schemas = (await _document(api))["components"]["schemas"]
    contract = {"id", "number", "service", "group", "priority", "status", "issued_at"}
    contract |= {"called_at", "window", "position", "eta_seconds"}
    assert set(schemas["Ticket"]["required"]) == contract
    error = jsonschema.Draft202012Validator(schemas["Error"])
    error.validate({"error": {"code": "hall_closed", "message": "opens at 13:30"}})
    assert not error.is_valid({"error": {"code": "x"}})
    assert not error.is_valid({"detail": "Not Found"})


async def test_every_body_field_is_declared_and_no_other_is_taken(api: ApiKit) -> None:
    """A handler sees only a body `Body.check` let through: each declared
    field is accepted by name, any other is refused before the handler."""
    document = await _document(api)
    headers = {"Authorization": f"Bearer {TOKENS['admin']}"}
    base = api.base
    bodies = 0
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            if "requestBody" not in op:
                continue
            bodies += 1
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            assert schema["additionalProperties"] is False
            url = base + path.removeprefix(API_PREFIX).format(
                window="1", ticket="A" * 22, code="ABCDEFGH"
            )
            declared = dict.fromkeys(schema["properties"], None)
            extra = await api.client.request(
                method, url, headers=headers, json={**declared, "priorty": "x"}
            )
            assert extra.status_code == 422, (path, extra.text)
            assert extra.json()["error"]["code"] == "unknown_field"
            only = await api.client.request(method, url, headers=headers, json=declared)
            assert only.json()["error"]["code"] != "unknown_field", path
            for name in schema.get("required", []):
                assert only.json()["error"]["code"] == "missing_field", path
                assert name in only.json()["error"]["message"] or len(schema["required"]) > 1
    assert bodies == 8
