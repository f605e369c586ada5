"""The OpenAPI 3.1 document, built from the list of operations the app serves (api/contract.py
declarations) for the running auth mode: the parameters and bodies from the inputs' rules,
every answer each operation can give, with its problem codes, from the same declarations."""

from __future__ import annotations

from collections import defaultdict

from api.auth import Auth
from api.contract import WHOLE, Field, Operation
from api.problems import status_of
from api.schemas import PROBLEM
from engine.errors import BY_CODE, Code

# What each code of the API's own means (the engine's say it in engine/errors.py docstrings).
MEANINGS = {
    "INVALID_JSON": "The body is not a JSON object.",
    "MISSING_FIELD": "A required body property is missing.",
    "INVALID_FIELD": "A body property (or a reservation id in the path) breaks its rule.",
    "INVALID_AMOUNT": "The amount is not a number > 0 with at most two decimals, at most "
                      "10,000,000.",
    "INVALID_ID": "A path or query id is not an integer from 1 to 2^53-1.",
    "MISSING_PARAMETER": "A required query parameter or header is missing.",
    "DUPLICATE_PARAMETER": "A query parameter is given more than once.",
    "INVALID_IDEMPOTENCY_KEY": "Idempotency-Key is not one value of 1-255 visible ASCII "
                               "characters.",
    "AUTH_REQUIRED": "No `Authorization: Bearer <JWT>`.",
    "AUTH_INVALID": "The JWT is malformed, badly signed, unsigned (alg none), expired, not yet "
                    "valid, or of another issuer or audience.",
    "FORBIDDEN_CUSTOMER": "The JWT's sub is not the customer the request names.",
    "FORBIDDEN_SCOPE": "The JWT lacks the scope this needs.",
    "BODY_TOO_LARGE": "The body exceeds 64 KiB (a catalogue document: 8 MiB).",
    "INVALID_PARAMETER": "A query parameter breaks its rule.",
    "INVALID_DOCUMENT": "The catalogue document breaks a rule or would change a seat map, a "
                        "date or a held or sold seat's price; the detail starts with the "
                        "field's path.",
    "INVALID_SETTING": "A setting is unknown or its value breaks its rule; the detail starts "
                       "with the setting's name.",
    "ADMIN_UNAUTHORIZED": "No `Authorization: Bearer <ADMIN_TOKEN>`, or another token.",
    "HEADERS_TOO_LARGE": "The headers exceed 16 KiB in all.",
    "INTERNAL": "An unexpected error (a bug); it was logged.",
    "STORE_UNAVAILABLE": "Redis did not answer in time; the detail says whether a write may "
                         "have been applied.",
    "STORE_FULL": "Redis is out of memory or cannot write: writes are refused (a charge: "
                  "past MEMORY_WATERMARK, one that would add a new customer or key). Nothing "
                  "was applied.",
    "OVERLOADED": "This worker has MAX_IN_FLIGHT requests in progress: nothing was done; "
                  "retry after Retry-After.",
}
HEADERS = {
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string"},
                               "description": "`Bearer`, with `error=\"invalid_token\"` for a "
                                              "JWT that was refused."}},
    429: {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1},
                          "description": "Seconds before the limit lets a request through."}},
    503: {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 0},
                          "description": "Seconds before a retry may succeed."}},
}


def meaning(code: str) -> str:
    if code in MEANINGS:
        return MEANINGS[code]
    return (BY_CODE[Code[code]].__doc__ or "").strip()


def _parameter(f: Field) -> dict:
    schema = f.schema()
    schema.pop("examples", None)
    schema.pop("description", None)  # said once, on the parameter
    p = {"name": f.name, "in": f.where, "required": f.required, "schema": schema}
    if f.description:
        p["description"] = f.description
    if f.example is not None:
        p["example"] = f.example
    return p


def _body(fields: list[Field], one_of: tuple[str, ...] = ()) -> dict:
    whole = [f for f in fields if f.name == WHOLE]
    if whole:  # the body is one document (an operator's catalogue, settings)
        media: dict = {"schema": whole[0].schema()}
        if whole[0].example is not None:
            media["example"] = whole[0].example
        return {"required": True, "content": {"application/json": media}}
    schema = {"type": "object", "required": [f.name for f in fields if f.required],
              "properties": {f.name: f.schema() for f in fields}}
    if one_of:  # at least one of these optional fields (seatId, or quantity)
        schema["anyOf"] = [{"required": [name]} for name in one_of]
    media = {"schema": schema}
    example = {f.name: f.example for f in fields if f.example is not None}
    if example:
        media["example"] = example
    return {"required": True, "content": {"application/json": media}}


def _problems(status: int, codes: list[str]) -> dict:
    answer = {
        "description": "\n\n".join(f"`{c}`: {meaning(c)}" for c in codes),
        "content": {"application/problem+json": {"schema": {
            "allOf": [{"$ref": "#/components/schemas/Problem"}],
            "properties": {"status": {"const": status}, "code": {"enum": codes}}}}},
    }
    if status in HEADERS:
        answer["headers"] = HEADERS[status]
    return answer


def operation(op: Operation, auth: Auth) -> dict:
    d: dict = {"operationId": op.operation_id, "tags": [op.tag], "summary": op.summary}
    if op.description:
        d["description"] = op.description
    params = [_parameter(f) for f in op.inputs if f.where != "body"]
    if params:
        d["parameters"] = params
    body = [f for f in op.inputs if f.where == "body"]
    if body:
        d["requestBody"] = _body(body, op.body_one_of)
    ok: dict = {"description": op.ok.description,
                "content": {op.ok.media_type: {"schema": op.ok.schema}}}
    if op.ok.example is not None:
        ok["content"][op.ok.media_type]["example"] = op.ok.example
    if op.links:
        ok["links"] = op.links
    if op.ok.headers:
        ok["headers"] = op.ok.headers
    responses = {"200": ok}
    if op.ok.not_modified:
        responses["304"] = {"description": op.ok.not_modified, "headers": op.ok.headers}
    by_status: dict[int, list[str]] = defaultdict(list)
    for code in sorted(op.error_codes(auth)):
        by_status[status_of(code)].append(code)
    for status in sorted(by_status):
        responses[str(status)] = _problems(status, by_status[status])
    d["responses"] = responses
    requirement = op.security.requirement(auth)
    if requirement is not None:
        d["security"] = requirement
    return d


def document(operations: list[Operation], auth: Auth, *, title: str, version: str,
             description: str, tags: dict[str, str] | None = None) -> dict:
    """The document of ``operations`` (each path once, its methods under it; the security
    schemes that their securities use; tags in the order they first appear)."""
    paths: dict[str, dict] = {}
    schemes: dict[str, dict] = {}
    names: list[str] = []
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = operation(op, auth)
        schemes |= op.security.schemes(auth)
        if op.tag not in names:
            names.append(op.tag)
    components: dict = {"schemas": {"Problem": PROBLEM}}
    if schemes:
        components["securitySchemes"] = schemes
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "tags": [{"name": n, **({"description": tags[n]} if tags and n in tags else {})}
                 for n in names],
        "paths": paths,
        "components": components,
    }
