"""Shared fixtures of the Parley compatibility suite.

Every Chat REST call goes through the official `twilio` helper library. The only thing we change
is the Chat domain's base URL: in twilio 9.x `client.chat` is a `twilio.base.domain.Domain` whose
`base_url` attribute (default "https://chat.twilio.com") is prefixed to every relative URI, so

    client.chat.base_url = PARLEY_URL

redirects all Chat v2 calls (paging links are followed verbatim from `meta.next_page_url`).

Environment (set by compat/run):
  PARLEY_URL                                   e.g. http://127.0.0.1:41234
  ACCOUNT_SID, AUTH_TOKEN                      the bootstrap account
  API_KEY_SID, API_KEY_SECRET                  an API key of that account
  ACCOUNT2_SID, ACCOUNT2_AUTH_TOKEN            a second account (tenancy tests)
  ACCOUNT2_API_KEY_SID, ACCOUNT2_API_KEY_SECRET  an API key of the second account (optional)
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from typing import Iterator, List, Optional, Tuple

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"environment variable {name} is required (run the suite through compat/run)", 2)
    return value


PARLEY_URL = _env("PARLEY_URL").rstrip("/")
ACCOUNT_SID = _env("ACCOUNT_SID")
AUTH_TOKEN = _env("AUTH_TOKEN")
API_KEY_SID = _env("API_KEY_SID")
API_KEY_SECRET = _env("API_KEY_SECRET")
ACCOUNT2_SID = _env("ACCOUNT2_SID")
ACCOUNT2_AUTH_TOKEN = _env("ACCOUNT2_AUTH_TOKEN")
ACCOUNT2_API_KEY_SID = os.environ.get("ACCOUNT2_API_KEY_SID", "")
ACCOUNT2_API_KEY_SECRET = os.environ.get("ACCOUNT2_API_KEY_SECRET", "")


class RecordingHttpClient(TwilioHttpClient):
    """The library's own HTTP client, remembering each request it sent (method, url, params)."""

    def __init__(self) -> None:
        super().__init__(timeout=30)
        self.sent: List[Tuple[str, str, dict, object]] = []

    def request(self, method, url, params=None, data=None, headers=None, auth=None,
                timeout=None, allow_redirects=False):
        response = super().request(method, url, params=params, data=data, headers=headers,
                                   auth=auth, timeout=timeout, allow_redirects=allow_redirects)
        self.sent.append((method, url, dict(params or {}), response))
        return response

    def gets(self) -> List[Tuple[str, str, dict, object]]:
        return [r for r in self.sent if r[0] == "GET"]

    def last_json(self) -> dict:
        """The JSON body of the last response the library received."""
        return json.loads(self.sent[-1][3].text)

    def clear(self) -> None:
        self.sent.clear()


def http(client: Client) -> RecordingHttpClient:
    """The recording HTTP client behind an official client made by make_client()."""
    return client.http_client  # type: ignore[return-value]


def make_client(username: str, password: str, account_sid: Optional[str] = None) -> Client:
    client = Client(username, password, account_sid, http_client=RecordingHttpClient())
    client.chat.base_url = PARLEY_URL
    return client


@pytest.fixture
def client() -> Client:
    """Official client authenticated with the account SID and auth token."""
    return make_client(ACCOUNT_SID, AUTH_TOKEN)


@pytest.fixture
def key_client() -> Client:
    """Official client authenticated with an API key (SK…) of the same account."""
    return make_client(API_KEY_SID, API_KEY_SECRET, ACCOUNT_SID)


@pytest.fixture
def client2() -> Client:
    """Official client of the second account."""
    return make_client(ACCOUNT2_SID, ACCOUNT2_AUTH_TOKEN)


def unique(prefix: str = "compat") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def service(client):
    """A fresh Chat service for one test; deleted afterwards (deletion errors ignored)."""
    svc = client.chat.v2.services.create(friendly_name=unique("svc"))
    yield svc
    try:
        client.chat.v2.services(svc.sid).delete()
    except Exception:  # noqa: BLE001 - cleanup only
        pass


@pytest.fixture
def service2(client2):
    """A fresh service owned by the second account."""
    svc = client2.chat.v2.services.create(friendly_name=unique("svc2"))
    yield svc
    try:
        client2.chat.v2.services(svc.sid).delete()
    except Exception:  # noqa: BLE001
        pass


@contextmanager
def raises_rest(status: int, code: Optional[object] = None) -> Iterator[dict]:
    """Expect a TwilioRestException with this HTTP status (and code, or one of a tuple of codes)."""
    box: dict = {}
    with pytest.raises(TwilioRestException) as info:
        yield box
    exc = info.value
    box["exc"] = exc
    assert exc.status == status, f"HTTP status {exc.status} (code {exc.code}, msg {exc.msg!r}), expected {status}"
    if code is not None:
        codes = code if isinstance(code, tuple) else (code,)
        assert exc.code in codes, f"error code {exc.code} (msg {exc.msg!r}), expected one of {codes}"


@contextmanager
def raises_list_error() -> Iterator[None]:
    """List errors surface as a plain TwilioException("Unable to fetch page") in twilio-python."""
    with pytest.raises(TwilioException) as info:
        yield
    assert "Unable to fetch page" in str(info.value)


def raw(method: str, path: str, auth=(None, None), **kw) -> requests.Response:
    """Plain HTTP to Parley, for things the library cannot send (Parley extensions, /v1 ERS)."""
    if auth == (None, None):
        auth = (ACCOUNT_SID, AUTH_TOKEN)
    return requests.request(method, PARLEY_URL + path, auth=auth, timeout=30, **kw)


def assert_error_body(resp: requests.Response, status: int, codes=None) -> dict:
    assert resp.status_code == status, f"HTTP {resp.status_code}: {resp.text[:500]}"
    body = resp.json()
    assert body.get("status") == status, body
    assert isinstance(body.get("code"), int), body
    assert isinstance(body.get("message"), str) and body["message"], body
    assert body.get("more_info") == f"https://www.twilio.com/docs/errors/{body['code']}", body
    assert not ("type" in body and "title" in body), "RFC-9457 keys switch the library's error mode"
    if codes is not None:
        codes = codes if isinstance(codes, tuple) else (codes,)
        assert body["code"] in codes, body
    return body
