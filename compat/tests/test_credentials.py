"""Push credentials (contract §5): account-level CRUD; secrets are write-only."""

from datetime import datetime

import pytest

from conftest import ACCOUNT_SID, PARLEY_URL, http, raises_rest, unique
from push_fixtures import APNS_CERT, APNS_KEY, fcm_secret

CERT = APNS_CERT
KEY = APNS_KEY
FCM_SECRET = fcm_secret("secretmarker-project")
GCM_KEY = "AIzaGCMAPIKEYMARKERcompat3456"
# Pieces of every secret sent: none may come back in any response.
MARKERS = ("-----BEGIN", "PRIVATE KEY", CERT.splitlines()[1], KEY.splitlines()[1],
           "secretmarker", "APIKEYMARKER")


def _no_secret_in_any_response(client):
    for method, url, _, resp in http(client).sent:
        for marker in MARKERS:
            assert marker not in resp.text, f"{method} {url} leaked a secret: {resp.text[:300]}"


@pytest.fixture
def cleanup(client):
    sids = []
    yield sids
    for sid in sids:
        try:
            client.chat.v2.credentials(sid).delete()
        except Exception:  # noqa: BLE001
            pass


def test_apn_credential_crud(client, cleanup):
    name = unique("apn")
    cred = client.chat.v2.credentials.create(type="apn", friendly_name=name, certificate=CERT,
                                             private_key=KEY, sandbox=True)
    cleanup.append(cred.sid)
    assert http(client).sent[-1][3].status_code == 201
    assert cred.sid.startswith("CR") and len(cred.sid) == 34
    assert cred.account_sid == ACCOUNT_SID
    assert cred.friendly_name == name
    assert cred.type == "apn"
    assert isinstance(cred.sandbox, str) and cred.sandbox.lower() == "true"
    assert isinstance(cred.date_created, datetime) and isinstance(cred.date_updated, datetime)
    assert cred.url == f"{PARLEY_URL}/v2/Credentials/{cred.sid}"
    body = http(client).last_json()
    for secret_field in ("certificate", "private_key", "secret", "api_key"):
        assert secret_field not in body

    fetched = client.chat.v2.credentials(cred.sid).fetch()
    assert fetched.sid == cred.sid and fetched.type == "apn" and fetched.friendly_name == name

    updated = client.chat.v2.credentials(cred.sid).update(friendly_name="renamed", sandbox=False)
    assert updated.friendly_name == "renamed"
    assert isinstance(updated.sandbox, str) and updated.sandbox.lower() == "false"
    assert updated.date_updated >= updated.date_created
    assert client.chat.v2.credentials(cred.sid).fetch().friendly_name == "renamed"

    assert cred.sid in [c.sid for c in client.chat.v2.credentials.list()]
    _no_secret_in_any_response(client)

    assert client.chat.v2.credentials(cred.sid).delete() is True
    assert http(client).sent[-1][3].status_code == 204
    with raises_rest(404, 20404):
        client.chat.v2.credentials(cred.sid).fetch()
    assert cred.sid not in [c.sid for c in client.chat.v2.credentials.list()]


def test_fcm_credential_crud(client, cleanup):
    cred = client.chat.v2.credentials.create(type="fcm", friendly_name="fcm one", secret=FCM_SECRET)
    cleanup.append(cred.sid)
    assert cred.type == "fcm"
    assert cred.sandbox is None or isinstance(cred.sandbox, str)
    updated = client.chat.v2.credentials(cred.sid).update(secret=fcm_secret("secretmarker-rotated"))
    assert updated.sid == cred.sid and updated.type == "fcm"
    _no_secret_in_any_response(client)
    assert client.chat.v2.credentials(cred.sid).delete() is True


def test_gcm_credential_create(client, cleanup):
    cred = client.chat.v2.credentials.create(type="gcm", api_key=GCM_KEY)
    cleanup.append(cred.sid)
    assert cred.type == "gcm"
    _no_secret_in_any_response(client)


def test_garbage_credentials_are_400_naming_the_parameter(client):
    with raises_rest(400, 20001):
        client.chat.v2.credentials.create(type="apn", certificate="C", private_key="K")
    with raises_rest(400, 20001):
        client.chat.v2.credentials.create(type="fcm", secret='{"type": "service_account"}')
    with raises_rest(400, 20001):
        client.chat.v2.credentials.create(type="fcm", secret=fcm_secret().replace(
            "https://oauth2.googleapis.com/token", "http://169.254.169.254/token"))
    with raises_rest(400, 20001):
        client.chat.v2.credentials.create(type="fcm", secret=FCM_SECRET, friendly_name="n" * 257)


def test_invalid_credential_type_is_400(client):
    with raises_rest(400):
        client.chat.v2.credentials.create(type="sms", friendly_name="nope")


def test_credentials_list_pages(client, cleanup):
    for i in range(3):
        cleanup.append(client.chat.v2.credentials.create(type="fcm", friendly_name=f"p{i}",
                                                         secret=FCM_SECRET).sid)
    http(client).clear()
    listed = [c.sid for c in client.chat.v2.credentials.list(page_size=1)]
    assert len(listed) == len(set(listed))
    assert set(cleanup) <= set(listed)
    assert len(http(client).gets()) >= 3
    body = http(client).last_json()
    assert body["meta"]["key"] == "credentials"
    assert body["meta"]["next_page_url"] is None


def test_fetch_unknown_credential_is_404(client):
    with raises_rest(404, 20404):
        client.chat.v2.credentials("CR" + "0" * 32).fetch()
