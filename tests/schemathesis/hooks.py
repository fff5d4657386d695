"""Credentials for tests/schemathesis/run.sh (loaded through SCHEMATHESIS_HOOKS).

run.sh registers two users and logs both in with curl. The first user's access
token (PORTCULLIS_TOKEN) goes, as `Authorization: Bearer`, to every operation
that takes one; the second user's refresh cookie (PORTCULLIS_REFRESH_TOKEN)
goes to POST /api/v1/auth/refresh. A second user, so that a generated
logout-all does not end the cookie's session as well.

Generated requests end these credentials now and then: a successful logout,
logout-all or password change, a DELETE /api/v1/users/me/sessions/{id} of the
token's own session (the id is easily taken from GET /api/v1/users/me/sessions),
a refresh cookie presented again after the reuse grace period. Any 401 to a
request that carried one means the same. The next request that needs it then
logs in again first, so the rest of the run keeps testing with live
credentials instead of collecting 401s. (A fixed `--header` token would be
dead for most of the run; schemathesis's own dynamic-token re-login does not
reach the stateful phase, and config-file auth would take precedence over
these providers.)
"""

from __future__ import annotations

import base64
import json
import os
import threading

import requests

import schemathesis

BASE_URL = os.environ["PORTCULLIS_URL"]
PASSWORD = os.environ["PORTCULLIS_PASSWORD"]

# Successful calls of these operations end the bearer token that made them.
ENDS_TOKEN = {"logout", "logout_all", "change_password"}


def _login(email: str) -> requests.Response:
    response = requests.post(
        f"{BASE_URL}/api/v1/auth/login",
        json={"email": email, "password": PASSWORD},
        timeout=30,
    )
    if response.status_code != 200:
        raise RuntimeError(f"logging in again answered {response.status_code}: {response.text[:500]}")
    return response


class Credential:
    """One live credential, replaced by logging in again once it has ended."""

    def __init__(self, value: str, renew):
        self._lock = threading.Lock()
        self._value: str | None = value or None
        self._renew = renew

    def get(self) -> str:
        with self._lock:
            if self._value is None:
                self._value = self._renew()
            return self._value

    def current(self) -> str | None:
        with self._lock:
            return self._value

    def end(self, value: str) -> None:
        with self._lock:
            if self._value == value:
                self._value = None


BEARER = Credential(
    os.environ["PORTCULLIS_TOKEN"],
    lambda: _login(os.environ["PORTCULLIS_EMAIL"]).json()["access_token"],
)
REFRESH_COOKIE = Credential(
    os.environ["PORTCULLIS_REFRESH_TOKEN"],
    lambda: _login(os.environ["PORTCULLIS_REFRESH_EMAIL"]).cookies["refresh_token"],
)


def _security_schemes(operation) -> set[str]:
    return {name for requirement in operation.definition.raw.get("security") or [] for name in requirement}


def _operation_id(case) -> str | None:
    return case.operation.definition.raw.get("operationId")


def _session_id(token: str) -> str | None:
    """The `sid` claim of an access token (not verified: it is ours)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return json.loads(base64.urlsafe_b64decode(payload)).get("sid")
    except (IndexError, ValueError, AttributeError):
        return None


@schemathesis.auth(refresh_interval=None).apply_to(lambda ctx: "bearer" in _security_schemes(ctx.operation))
class Bearer:
    def get(self, case, ctx):
        return BEARER.get()

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.auth(refresh_interval=None).apply_to(lambda ctx: "refresh_cookie" in _security_schemes(ctx.operation))
class RefreshCookie:
    def get(self, case, ctx):
        return REFRESH_COOKIE.get()

    def set(self, case, data, ctx):
        case.cookies = case.cookies or {}
        case.cookies["refresh_token"] = data


@schemathesis.hook
def after_call(ctx, case, response):
    status = response.status_code
    success = 200 <= status < 300
    sent = response.request.headers

    token = BEARER.current()
    if token is not None and sent.get("Authorization") == f"Bearer {token}":
        operation = _operation_id(case)
        own_session = (
            operation == "delete_session"
            and str((case.path_parameters or {}).get("id", "")).lower() == _session_id(token)
        )
        if status == 401 or (success and (operation in ENDS_TOKEN or own_session)):
            BEARER.end(token)

    cookie = REFRESH_COOKIE.current()
    if cookie is not None and status == 401 and f"refresh_token={cookie}" in (sent.get("Cookie") or ""):
        REFRESH_COOKIE.end(cookie)
