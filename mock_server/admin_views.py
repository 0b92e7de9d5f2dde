"""The admin API for tests, under /admin and apart from every OAuth path.

It moves the clock, sets policies, mints grants without a browser, reads events,
injects faults and switches on the deliberately broken modes. It has no
authentication: serve it on loopback only.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask import Blueprint, Response, request

from .app import current_server, json_response
from .broken import BROKEN_MODES, FAULT_KINDS
from .clock import OffsetOutOfRange
from .errors import InvalidRequest
from .forms import read_json_object
from .policy import PolicyError, load_integration

__all__ = ["admin"]

admin = Blueprint("admin", __name__, url_prefix="/admin")

MAX_OFFSET_SECONDS = 100 * 365 * 24 * 3600

ENDPOINTS = {
    "GET /admin": "this index",
    "POST /admin/reset": (
        "forget grants, tokens, events, faults, broken modes, grant-type "
        "restrictions, clock"
    ),
    "GET /admin/clock": "the server's now and clock offset",
    "POST /admin/clock": '{"advance_seconds": N} or {"offset_seconds": N}',
    "GET /admin/clients": "clients, with the credentials made at start",
    "PUT /admin/clients/<client_id>/policy": "a policy or app-integration object",
    "GET|PUT /admin/clients/<client_id>/grant-types": '{"grant_types": [...]}',
    "POST /admin/grants": '{"client_id", "scope", "user"} mints a grant, no browser',
    "GET /admin/families/<family_id>": "a family's lineage, by fingerprint",
    "GET /admin/events?since=N": "events as JSON",
    "GET /admin/events.jsonl": "events as JSON Lines",
    "GET|POST|DELETE /admin/faults": '{"kind", "count", "client_id", ...}',
    "GET|PUT /admin/broken-modes": '{"modes": [...]}',
}


def _body() -> dict[str, Any]:
    body = read_json_object(request)
    if body is None:
        raise InvalidRequest("The body must be a JSON object of UTF-8 text.")
    return body


def _number(
    body: dict[str, Any], name: str, low: float = -math.inf, high: float = math.inf
) -> float:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"{name} must be a number, got {json.dumps(value)}.")
    try:
        number = float(value)
    except OverflowError:
        # A JSON integer with hundreds of digits does not fit a float.
        number = math.inf
    if not math.isfinite(number):
        raise InvalidRequest(f"{name} must be finite.")
    if not low <= number <= high:
        allowed = f"{low:g} or more" if high == math.inf else f"{low:g} to {high:g}"
        raise InvalidRequest(f"{name} is {number:g}; allowed: {allowed}.")
    return number


@admin.get("")
def index():
    return json_response(
        {
            "endpoints": ENDPOINTS,
            "broken_modes": BROKEN_MODES,
            "fault_kinds": FAULT_KINDS,
        }
    )


@admin.post("/reset")
def reset():
    current_server().reset()
    return json_response({"reset": True})


@admin.get("/clock")
def clock():
    server = current_server()
    return json_response({"now": server.clock.now(), "offset": server.clock.offset()})


@admin.post("/clock")
def move_clock():
    server = current_server()
    body = _body()
    # Offsets are bounded so that now() stays a finite number a client can parse.
    if "advance_seconds" in body:
        step = _number(body, "advance_seconds", -MAX_OFFSET_SECONDS, MAX_OFFSET_SECONDS)
        try:
            server.clock.advance(step, bound=MAX_OFFSET_SECONDS)
        except OffsetOutOfRange as error:
            raise InvalidRequest(str(error)) from None
    elif "offset_seconds" in body:
        server.clock.set_offset(
            _number(body, "offset_seconds", -MAX_OFFSET_SECONDS, MAX_OFFSET_SECONDS)
        )
    else:
        raise InvalidRequest("Give advance_seconds or offset_seconds.")
    return json_response({"now": server.clock.now(), "offset": server.clock.offset()})


@admin.get("/clients")
def clients():
    server = current_server()
    secrets = {c.client_id: c.client_secret for c in server.credentials.values()}
    roles = {c.client_id: role for role, c in server.credentials.items()}
    return json_response(
        {
            "clients": [
                {
                    "client_id": c.client_id,
                    "client_secret": secrets.get(c.client_id),
                    "role": roles.get(c.client_id),
                    "confidential": c.confidential,
                    "scopes": c.scopes,
                    "token_access_policy": c.policy_json,
                }
                for c in server.clients()
            ]
        }
    )


@admin.put("/clients/<client_id>/policy")
def set_policy(client_id: str):
    server = current_server()
    client = server.client(client_id)
    if client is None:
        raise InvalidRequest(f"Unknown client {client_id!r}.")
    try:
        policy = load_integration(_body()).policy
    except PolicyError as exc:
        raise InvalidRequest(str(exc)) from None
    client.policy_json = policy.to_json()
    server.save_client(client)
    return json_response(
        {"client_id": client_id, "token_access_policy": policy.to_json()}
    )


@admin.get("/clients/<client_id>/grant-types")
def grant_types(client_id: str):
    server = current_server()
    if server.client(client_id) is None:
        raise InvalidRequest(f"Unknown client {client_id!r}.")
    return json_response(
        {"client_id": client_id, "grant_types": server.grant_types(client_id)}
    )


@admin.put("/clients/<client_id>/grant-types")
def set_grant_types(client_id: str):
    server = current_server()
    if server.client(client_id) is None:
        raise InvalidRequest(f"Unknown client {client_id!r}.")
    wanted = _body().get("grant_types")
    if not isinstance(wanted, list) or not all(isinstance(t, str) for t in wanted):
        raise InvalidRequest("grant_types must be a list of names.")
    try:
        server.set_grant_types(client_id, wanted)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return grant_types(client_id)


@admin.post("/grants")
def mint_grant():
    server = current_server()
    body = _body()
    client_id = body.get("client_id", server.credentials["main"].client_id)
    client = server.client(str(client_id))
    if client is None:
        raise InvalidRequest(f"Unknown client {client_id!r}.")
    scope = body.get("scope")
    if scope is None:
        scopes = list(client.scopes)
    elif isinstance(scope, str):
        scopes = scope.split()
    else:
        raise InvalidRequest("scope must be a space-separated string.")
    # The same rule as /authorize: a grant never holds a scope the client lacks.
    extra = sorted(set(scopes) - set(client.scopes))
    if extra:
        raise InvalidRequest(
            "Scope not allowed for this client: " + " ".join(extra) + "."
        )
    user = body.get("user", server.user)
    if not isinstance(user, str):
        raise InvalidRequest("user must be a string.")
    tokens = server.authority.start_grant(client, user, scopes)
    server.record(
        {
            "endpoint": "admin_grant",
            "client_id": client.client_id,
            "outcome": "issued",
            "family_id": tokens.family_id,
            "generation": 0,
            "issued_fp": tokens.issued_fp,
            "status": 200,
        }
    )
    return json_response({**tokens.response(), "family_id": tokens.family_id})


@admin.get("/families/<family_id>")
def family(family_id: str):
    lineage = current_server().authority.lineage(family_id)
    if lineage is None:
        raise InvalidRequest(f"Unknown family {family_id!r}.")
    return json_response(lineage)


def _since() -> int:
    try:
        # Clamped: SQLite integers stop at 2**63 - 1.
        return min(max(0, int(request.args.get("since", 0))), 2**62)
    except ValueError:
        raise InvalidRequest("since must be an integer.") from None


@admin.get("/events")
def events():
    return json_response({"events": current_server().store.events(_since())})


@admin.get("/events.jsonl")
def events_jsonl():
    lines = (
        json.dumps(e, sort_keys=True) + "\n"
        for e in current_server().store.events(_since())
    )
    return Response("".join(lines), mimetype="application/x-ndjson")


@admin.get("/faults")
def faults():
    return json_response({"faults": current_server().setting("faults", [])})


@admin.post("/faults")
def add_fault():
    body = _body()
    # A negative delay would make time.sleep fail inside the token endpoint.
    for name in ("count", "delay_ms", "hang_seconds"):
        if name in body:
            _number(body, name, low=0)
    count = body.get("count")
    if count is not None and not isinstance(count, int):
        # A count of 1.5 would fire twice and leave -0.5 behind.
        raise InvalidRequest(f"count must be a whole number, got {json.dumps(count)}.")
    try:
        current_server().add_fault(body)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return json_response({"faults": current_server().setting("faults", [])})


@admin.delete("/faults")
def clear_faults():
    current_server().clear_faults()
    return json_response({"faults": []})


@admin.get("/broken-modes")
def broken_modes():
    server = current_server()
    return json_response(
        {"modes": sorted(server.broken_modes()), "available": BROKEN_MODES}
    )


@admin.put("/broken-modes")
def set_broken_modes():
    modes = _body().get("modes", [])
    if not isinstance(modes, list) or not all(isinstance(m, str) for m in modes):
        raise InvalidRequest("modes must be a list of names.")
    try:
        current_server().set_broken_modes(modes)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return json_response({"modes": sorted(modes)})
