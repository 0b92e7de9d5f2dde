"""Databricks' account API for custom OAuth app integrations.

Paths and bodies follow the Databricks API reference; a new token_access_policy
applies to the integration's client from the next token it issues.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from .app import current_server, json_response
from .forms import read_json_object
from .policy import PolicyError, load_integration
from .records import Client

__all__ = ["accounts"]

accounts = Blueprint(
    "accounts",
    __name__,
    url_prefix="/api/2.0/accounts/<account_id>/oauth2/custom-app-integrations",
)


def _error(status: int, code: str, message: str):
    return json_response({"error_code": code, "message": message}, status)


def _view(client: Client, account_id: str) -> dict[str, Any]:
    return {
        "integration_id": client.integration_id,
        "client_id": client.client_id,
        "name": client.name,
        "redirect_urls": client.redirect_urls,
        "confidential": client.confidential,
        "scopes": client.scopes,
        "user_authorized_scopes": [],
        "token_access_policy": client.policy_json,
        "create_time": client.created_at,
        "created_by": 0,
        "creator_username": current_server().user,
        "account_id": account_id,
    }


def _find(account_id: str, integration_id: str) -> Client | None:
    for client in current_server().clients():
        if client.integration_id == integration_id and client.account_id == account_id:
            return client
    return None


@accounts.post("")
def create(account_id: str):
    body = read_json_object(request)
    if body is None:
        return _error(400, "MALFORMED_REQUEST", "The body must be a JSON object.")
    body.setdefault("token_access_policy", {})
    try:
        integration = load_integration(body)
    except PolicyError as exc:
        return _error(400, "INVALID_PARAMETER_VALUE", str(exc))
    client, secret = current_server().create_client(
        integration.name,
        integration.confidential,
        list(integration.scopes),
        list(integration.redirect_urls),
        integration.policy,
        account_id,
    )
    answer = {"integration_id": client.integration_id, "client_id": client.client_id}
    if secret is not None:
        answer["client_secret"] = secret
    return json_response(answer)


@accounts.get("")
def list_integrations(account_id: str):
    apps = [
        _view(c, account_id)
        for c in current_server().clients()
        if c.account_id == account_id
    ]
    return json_response({"apps": apps})


@accounts.get("/<integration_id>")
def get(account_id: str, integration_id: str):
    client = _find(account_id, integration_id)
    if client is None:
        return _error(404, "RESOURCE_DOES_NOT_EXIST", "No such app integration.")
    return json_response(_view(client, account_id))


@accounts.patch("/<integration_id>")
def update(account_id: str, integration_id: str):
    client = _find(account_id, integration_id)
    if client is None:
        return _error(404, "RESOURCE_DOES_NOT_EXIST", "No such app integration.")
    body = read_json_object(request)
    if body is None:
        return _error(400, "MALFORMED_REQUEST", "The body must be a JSON object.")
    merged = {
        "name": client.name,
        "confidential": client.confidential,
        "scopes": body.get("scopes", client.scopes),
        "redirect_urls": body.get("redirect_urls", client.redirect_urls),
        "token_access_policy": body.get("token_access_policy", client.policy_json),
    }
    try:
        integration = load_integration(merged)
    except PolicyError as exc:
        return _error(400, "INVALID_PARAMETER_VALUE", str(exc))
    client.scopes = list(integration.scopes)
    client.redirect_urls = list(integration.redirect_urls)
    client.policy_json = integration.policy.to_json()
    current_server().save_client(client)
    return json_response({})


@accounts.delete("/<integration_id>")
def delete(account_id: str, integration_id: str):
    client = _find(account_id, integration_id)
    if client is None:
        return _error(404, "RESOURCE_DOES_NOT_EXIST", "No such app integration.")
    current_server().delete_client(client.client_id)
    return json_response({})
