"""Every field the spec declares is on the wire (null when unset, never omitted), and nothing
secret is added. Bodies are the raw JSON the library received (recorded by the HTTP client).

The expected key sets come from the spec's component schemas, read from
compat/spec/twilio_chat_v2.json (a copy of Twilio's spec kept in the repository; override: PARLEY_SPEC).
"""

import json
import os
from pathlib import Path

import pytest

from conftest import http
from push_fixtures import FCM_SECRET

SPEC_PATH = Path(os.environ.get(
    "PARLEY_SPEC", Path(__file__).resolve().parents[1] / "spec/twilio_chat_v2.json"))


@pytest.fixture(scope="module")
def schemas():
    if not SPEC_PATH.is_file():
        pytest.fail(f"spec not found at {SPEC_PATH} (set PARLEY_SPEC)")
    return json.loads(SPEC_PATH.read_text())["components"]["schemas"]


def keys(schemas, name):
    return set(schemas[name]["properties"])


def _register(service_sid, cred_sid):
    from test_bindings import ext_ok, register_ext
    return ext_ok(register_ext(service_sid, "shape", "fcm", "shape-token", credential_sid=cred_sid))


def test_service_user_role_credential_shapes(client, service, schemas):
    svc = client.chat.v2.services(service.sid)
    svc.fetch()
    assert set(http(client).last_json()) == keys(schemas, "chat.v2.service")
    svc.users.create(identity="shape")
    assert set(http(client).last_json()) == keys(schemas, "chat.v2.service.user")
    svc.users("shape").fetch()
    assert set(http(client).last_json()) == keys(schemas, "chat.v2.service.user")
    svc.users.list()
    for u in http(client).last_json()["users"]:
        assert set(u) == keys(schemas, "chat.v2.service.user")
    svc.roles.list()
    for r in http(client).last_json()["roles"]:
        assert set(r) == keys(schemas, "chat.v2.service.role")
    cred = client.chat.v2.credentials.create(type="fcm", secret=FCM_SECRET)
    try:
        assert set(http(client).last_json()) == keys(schemas, "chat.v2.credential")
        client.chat.v2.credentials(cred.sid).fetch()
        assert set(http(client).last_json()) == keys(schemas, "chat.v2.credential")
    finally:
        client.chat.v2.credentials(cred.sid).delete()


def test_binding_shapes(client, service, schemas):
    cred = client.chat.v2.credentials.create(type="fcm", secret=FCM_SECRET)
    try:
        b = _register(service.sid, cred.sid)
        svc = client.chat.v2.services(service.sid)
        svc.bindings(b["sid"]).fetch()
        assert set(http(client).last_json()) == keys(schemas, "chat.v2.service.binding")
        svc.bindings.list()
        for item in http(client).last_json()["bindings"]:
            assert set(item) == keys(schemas, "chat.v2.service.binding")
        svc.users("shape").user_bindings(b["sid"]).fetch()
        assert set(http(client).last_json()) == keys(schemas, "chat.v2.service.user.user_binding")
        svc.users("shape").user_bindings.list()
        for item in http(client).last_json()["bindings"]:
            assert set(item) == keys(schemas, "chat.v2.service.user.user_binding")
    finally:
        client.chat.v2.credentials(cred.sid).delete()


def test_list_meta_shape(client, service):
    client.chat.v2.services(service.sid).roles.list(page_size=3, limit=3)
    meta = http(client).last_json()["meta"]
    assert set(meta) == {"page", "page_size", "first_page_url", "previous_page_url", "url",
                         "next_page_url", "key"}
    assert meta["key"] == "roles" and meta["page"] == 0 and meta["page_size"] == 3
    assert meta["next_page_url"] is not None  # 4 default roles, 3 per page
