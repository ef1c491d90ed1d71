"""Request and response types of the HTTP API (msgspec Structs: validation, JSON and schema).

>>> decode_decide(b'{"visitor_id": "v1", "context": {"device": "mobile"}}').visitor_id
'v1'
>>> sorted(openapi()["paths"])
['/', '/healthz', '/login', '/logout', '/metrics', '/openapi.json', '/v1/activate', '/v1/decide', '/v1/forget', '/v1/outcome', '/v1/policies', '/v1/report', '/v1/segments']
"""

from __future__ import annotations

from typing import Literal

import msgspec

ContextValue = str | int | float | bool | None


class DecideRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Choose an intervention for one visitor."""

    visitor_id: str
    context: dict[str, ContextValue] = {}
    eligible: list[str] | None = None
    #: add ``reasons``: the features that moved the chosen action above the runner-up
    explain: bool = False
    #: where on the site (required when the shop declares placements)
    placement: str | None = None
    #: false: log now, learn only after ``POST /v1/activate``; true: shown now; absent: as
    #: the placement's ``activation`` says
    activate: bool | None = None
    #: a preview link's token (``POST /v1/preview``): the previewed action, nothing logged
    preview: str | None = None
    #: the signed token the shop's backend rendered (shops with ``signed_requests``)
    token: str | None = None


class Reason(msgspec.Struct):
    """One feature's share of the chosen action's lead over ``reasons_versus``."""

    feature: str
    value: ContextValue
    contribution: float


class DecideResponse(msgspec.Struct, omit_defaults=True):
    """The fields after ``model_version`` are there only when the request asked to explain:
    ``reasons`` (null when there are none, with ``reasons_unavailable`` saying why) and the
    action they compare with (``reasons_versus``)."""

    event_id: str
    action: str
    probability: float
    group: str
    model_version: int
    placement: str
    #: true when the decision waits for ``POST /v1/activate``
    deferred: bool = False
    #: true for a preview link's answer (no event: nothing was logged or learned)
    preview: bool = False
    reasons: list[Reason] | None | msgspec.UnsetType = msgspec.UNSET
    reasons_versus: str | None | msgspec.UnsetType = msgspec.UNSET
    reasons_unavailable: str | None | msgspec.UnsetType = msgspec.UNSET


class OutcomeRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Report what a visitor did: after one decision (``event_id``), or an order of a visitor
    (``visitor_id``: every open decision of theirs is credited); exactly one of the two."""

    converted: bool
    event_id: str | None = None
    visitor_id: str | None = None
    order_value: float = 0.0
    outcome_id: str | None = None
    #: the incentives the order used (action ids): only those are charged
    redeemed: list[str] | None = None


class OutcomeResponse(msgspec.Struct, omit_defaults=True):
    """``recorded``, ``duplicate``, ``unattributed`` (by visitor: nothing open) or, at a
    decide replica, ``accepted``; ``events``: the decisions an order by visitor closed."""

    status: str
    events: int | msgspec.UnsetType = msgspec.UNSET


class ActivateRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A deferred decision was shown to the visitor."""

    event_id: str
    #: the page's signed token (shops with ``signed_requests``)
    token: str | None = None


class ActivateResponse(msgspec.Struct):
    """``activated`` or ``duplicate`` (already active): show it; ``capped`` (the visitor
    reached a frequency cap since the decision): do not show it; at a decide replica,
    ``accepted``."""

    status: str


class ForgetRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Erase one visitor on request (the write token; one process, not a decide replica)."""

    visitor_id: str


class PoliciesRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A person's decision on a placement's promotion gate (the write token): ``promote``
    SPEC, ``pin`` (SPEC or the champion), ``unpin`` or ``roll_back``."""

    change: Literal["promote", "pin", "unpin", "roll_back"]
    spec: str | None = None
    placement: str | None = None


class ForgetResponse(msgspec.Struct):
    """``forgotten``: how many of the visitor's decisions, order ids and activations were
    blanked (0 for a visitor never seen); ``note``: what the erasure cannot reach."""

    status: str
    decisions: int
    outcomes: int
    activations: int
    note: str


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    field: str | None = None


class ErrorResponse(msgspec.Struct):
    error: ErrorDetail


decode_decide = msgspec.json.Decoder(DecideRequest).decode
decode_outcome = msgspec.json.Decoder(OutcomeRequest).decode
decode_activate = msgspec.json.Decoder(ActivateRequest).decode
decode_forget = msgspec.json.Decoder(ForgetRequest).decode
decode_policies = msgspec.json.Decoder(PoliciesRequest).decode
encode = msgspec.json.Encoder().encode


def context_schema(features) -> dict:
    """The JSON schema of a decide's ``context`` for a shop's features (a category the shop
    did not declare is accepted, as the unknown one; numbers are finite)."""
    properties = {}
    for feature in features:
        kind = type(feature).__name__
        if kind == "Categorical":
            properties[feature.name] = {"type": ["string", "null"],
                                        "examples": list(feature.categories)}
        elif kind == "Boolean":
            properties[feature.name] = {"type": ["boolean", "null"]}
        else:  # Numeric, Cyclic
            properties[feature.name] = {"type": ["number", "null"]}
    return {"type": "object", "properties": properties, "additionalProperties": False}


def openapi(title: str = "cartwheel", version: str = "0.1.0", features=None) -> dict:
    """The OpenAPI 3.1 description, generated from the Structs above (``features``: the
    shop's, to describe its context keys)."""
    (decide_req, decide_res, outcome_req, outcome_res, activate_req, activate_res, forget_req,
     forget_res, policies_req, error), components = msgspec.json.schema_components(
        [DecideRequest, DecideResponse, OutcomeRequest, OutcomeResponse, ActivateRequest,
         ActivateResponse, ForgetRequest, ForgetResponse, PoliciesRequest, ErrorResponse],
        ref_template="#/components/schemas/{name}")

    if features is not None:  # the shop's own context keys
        components["DecideRequest"]["properties"]["context"] = context_schema(features)

    def body(schema):
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    def answer(schema, text):
        return {"description": text, "content": {"application/json": {"schema": schema}}}

    errors = {code: answer(error, text) for code, text in (
        ("400", "invalid request (malformed JSON, wrong types, unknown action, PII, ...)"),
        ("413", "body larger than the configured limit"),
        ("415", "not application/json, or compressed"),
        ("429", "too many requests for this visitor or address (Retry-After)"),
        ("503", "the event log or the bus cannot be written now (Retry-After)"))}
    untrusted = {"401": answer(error, "signed requests required and the token is missing, "
                                      "forged or expired"),
                 "403": answer(error, "eligible sent without the shop's token")}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": {
            "/v1/decide": {"post": {
                "summary": "Choose an intervention for a visitor", "requestBody": body(decide_req),
                "responses": {"200": answer(decide_res, "the decision"), **errors,
                              **untrusted}}},
            "/v1/outcome": {"post": {
                "summary": "Report an outcome (bearer token when configured)",
                "requestBody": body(outcome_req),
                "responses": {"200": answer(outcome_res, "recorded, duplicate or unattributed"),
                              **errors,
                              "401": answer(error, "missing or wrong bearer token"),
                              "404": answer(error, "unknown event"),
                              "409": answer(error, "event already closed, past its window, "
                                                   "or deferred and never activated")}}},
            "/v1/activate": {"post": {
                "summary": "A deferred decision was shown: learn it from now on",
                "requestBody": body(activate_req),
                "responses": {"200": answer(activate_res, "activated, duplicate or capped"),
                              **errors,
                              "404": answer(error, "unknown event"),
                              "409": answer(error, "its window passed")}}},
            "/v1/forget": {"post": {
                "summary": "Erase a visitor's rows on request (bearer token)",
                "requestBody": body(forget_req),
                "responses": {"200": answer(forget_res, "forgotten"), **errors,
                              "401": answer(error, "missing or wrong bearer token")}}},
            "/v1/policies": {"post": {
                "summary": "A person promotes, pins, unpins or rolls back a placement's "
                           "promotion gate (bearer token)",
                "requestBody": body(policies_req),
                "responses": {"200": {"description": "the gate's standing"}, **errors,
                              "401": answer(error, "missing or wrong bearer token")}}},
            "/v1/report": {"get": {
                "summary": "KPIs per group and action, uplift with CIs, uplift over time, "
                           "action mix, spend and the model (token or session cookie when "
                           "configured)",
                "responses": {"200": {"description": "the report"},
                              "401": answer(error, "missing or wrong token")}}},
            "/v1/segments": {"get": {
                "summary": "What the policy does, as readable segments with uplift intervals "
                           "(token or session cookie when configured)",
                "responses": {"200": {"description": "segments, or status 'unavailable' "
                                                     "with the reason"},
                              "401": answer(error, "missing or wrong token")}}},
            "/": {"get": {"summary": "the dashboard page (sign in through /login)",
                          "responses": {"200": {"description": "HTML"}}}},
            "/login": {
                "get": {"summary": "the sign-in form; ?code=...: the one-time link serve "
                                   "printed (a secret in the URL never signs in)",
                        "responses": {"200": {"description": "the form"},
                                      "303": {"description": "signed in (one-time code)"},
                                      "400": {"description": "a secret in the URL"},
                                      "401": {"description": "used or expired code"}}},
                "post": {"summary": "sign in: the form field token holds the read secret",
                         "requestBody": {"required": True, "content": {
                             "application/x-www-form-urlencoded": {"schema": {
                                 "type": "object", "required": ["token"],
                                 "properties": {"token": {"type": "string"}}}}}},
                         "responses": {"303": {"description": "signed in (session cookie)"},
                                       "401": {"description": "wrong secret"},
                                       "403": {"description": "a foreign Origin"},
                                       "429": {"description": "too many wrong secrets "
                                                              "(Retry-After)"}}}},
            "/logout": {"post": {"summary": "end the session",
                                 "responses": {"303": {"description": "signed out"}}}},
            "/healthz": {"get": {"summary": "liveness", "responses": {"200": {"description": "ok"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "text exposition"}}}},
            "/openapi.json": {"get": {"summary": "this document",
                                      "responses": {"200": {"description": "OpenAPI"}}}},
        },
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
