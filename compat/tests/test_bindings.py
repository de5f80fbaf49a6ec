"""Push bindings: registration through both doors, then reading/deleting with the official library.

Registration is not part of Chat REST v2, so it is done with plain HTTP:
  (a) Parley extension  POST /v2/Services/{IS}/Users/{identity}/Bindings  (HTTP Basic)
  (b) the Twilio SDK's ERS call  POST /v1/registrations?productId=ip_messaging
      with header X-Twilio-Token (an Access Token made by the official library).
Everything after registration (list/fetch/delete at user and service level) uses the library.
"""

import time
from datetime import datetime
from urllib.parse import unquote

import pytest
import requests
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant

from conftest import (ACCOUNT2_API_KEY_SECRET, ACCOUNT2_API_KEY_SID, ACCOUNT2_AUTH_TOKEN,
                      ACCOUNT2_SID, ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, PARLEY_URL,
                      assert_error_body, http, raises_list_error, raises_rest, raw)
from push_fixtures import APNS_CERT, APNS_KEY, FCM_SECRET

ALL_TYPES = ["new_message", "added_to_channel", "invited_to_channel", "removed_from_channel"]


# --------------------------------------------------------------------------------------------
# helpers

def register_ext(service_sid, identity, binding_type, address, *, credential_sid=None,
                 endpoint=None, message_types=None, auth=(None, None)):
    form = [("BindingType", binding_type)]
    if address is not None:
        form.append(("Address", address))
    if credential_sid:
        form.append(("CredentialSid", credential_sid))
    if endpoint:
        form.append(("Endpoint", endpoint))
    for mt in message_types or []:
        form.append(("MessageTypes", mt))
    return raw("POST", f"/v2/Services/{service_sid}/Users/{identity}/Bindings", auth=auth, data=form)


def ext_ok(resp, status=None):
    assert resp.status_code in ((status,) if status else (200, 201)), \
        f"HTTP {resp.status_code}: {resp.text[:500]}"
    return resp.json()


def make_token(identity, service_sid, *, account_sid=ACCOUNT_SID, key_sid=API_KEY_SID,
               key_secret=API_KEY_SECRET, push_credential_sid=None, endpoint_id=None, **kw):
    token = AccessToken(account_sid, key_sid, key_secret, identity=identity, **kw)
    token.add_grant(ChatGrant(service_sid=service_sid, push_credential_sid=push_credential_sid,
                              endpoint_id=endpoint_id))
    return token.to_jwt()


def ers_body(address, channel_type="fcm", message_types=None):
    return {
        "endpoint_platform": "compat-suite/1.0 (python)",
        "channel_type": channel_type,
        "version": "4" if channel_type == "apn" else "3",
        "message_types": message_types if message_types is not None else [
            "twilio.channel.new_message", "twilio.channel.added_to_channel"],
        "data": {"registration_id": address},
    }


def register_ers(token, body):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-Twilio-Token"] = token
    return requests.post(f"{PARLEY_URL}/v1/registrations", params={"productId": "ip_messaging"},
                         headers=headers, json=body, timeout=30)


def unregister_ers(token, registration_id):
    return requests.delete(f"{PARLEY_URL}/v1/registrations/{registration_id}",
                           params={"productId": "ip_messaging"},
                           headers={"X-Twilio-Token": token}, timeout=30)


@pytest.fixture
def fcm_cred(client):
    cred = client.chat.v2.credentials.create(type="fcm", friendly_name="fcm", secret=FCM_SECRET)
    yield cred
    try:
        client.chat.v2.credentials(cred.sid).delete()
    except Exception:  # noqa: BLE001
        pass


@pytest.fixture
def apn_cred(client):
    cred = client.chat.v2.credentials.create(type="apn", friendly_name="apn",
                                             certificate=APNS_CERT, private_key=APNS_KEY,
                                             sandbox=True)
    yield cred
    try:
        client.chat.v2.credentials(cred.sid).delete()
    except Exception:  # noqa: BLE001
        pass


# --------------------------------------------------------------------------------------------
# (a) Parley extension door

@pytest.mark.ext
def test_ext_register_creates_user_and_binding(client, service, apn_cred):
    resp = register_ext(service.sid, "alice@example.com", "apn", "apns-token-aaa",
                        credential_sid=apn_cred.sid, endpoint="ios:alice:dev1",
                        message_types=["new_message", "added_to_channel"])
    b = ext_ok(resp, 201)
    assert b["sid"].startswith("BS") and len(b["sid"]) == 34
    assert b["identity"] == "alice@example.com"
    assert b["binding_type"] == "apn"
    assert b["endpoint"] == "ios:alice:dev1"
    assert b["credential_sid"] == apn_cred.sid
    assert sorted(b["message_types"]) == ["added_to_channel", "new_message"]
    # the user did not exist before: it was created
    user = client.chat.v2.services(service.sid).users("alice@example.com").fetch()
    assert user.identity == "alice@example.com"
    fetched = client.chat.v2.services(service.sid).users(user.sid).user_bindings(b["sid"]).fetch()
    assert fetched.user_sid == user.sid
    assert fetched.endpoint == "ios:alice:dev1"


@pytest.mark.ext
def test_ext_reregister_same_endpoint_updates(client, service, fcm_cred):
    first = ext_ok(register_ext(service.sid, "carol", "fcm", "tok-1", credential_sid=fcm_cred.sid,
                                endpoint="android:carol:1"), 201)
    second = ext_ok(register_ext(service.sid, "carol", "fcm", "tok-2", credential_sid=fcm_cred.sid,
                                 endpoint="android:carol:1"), 200)
    assert second["sid"] == first["sid"]
    assert len(client.chat.v2.services(service.sid).users("carol").user_bindings.list()) == 1


@pytest.mark.ext
def test_ext_unknown_binding_type_is_400(client, service):
    resp = register_ext(service.sid, "dave", "sms", "addr")
    assert_error_body(resp, 400, (20001, 50209))


@pytest.mark.ext
def test_ext_missing_address_is_400(client, service, fcm_cred):
    resp = register_ext(service.sid, "dave", "fcm", None, credential_sid=fcm_cred.sid)
    assert_error_body(resp, 400, 20001)
    assert client.chat.v2.services(service.sid).bindings.list(identity=["dave"]) == []


@pytest.mark.ext
def test_ext_unknown_message_type_is_400(client, service, fcm_cred):
    resp = register_ext(service.sid, "dave", "fcm", "tok", credential_sid=fcm_cred.sid,
                        message_types=["new_message", "telepathy"])
    assert_error_body(resp, 400)
    assert client.chat.v2.services(service.sid).bindings.list(identity=["dave"]) == []


@pytest.mark.ext
def test_ext_wrong_credential_type_is_400(service, apn_cred):
    resp = register_ext(service.sid, "dave", "fcm", "tok", credential_sid=apn_cred.sid)
    assert resp.status_code == 400, resp.text


@pytest.mark.ext
def test_ext_credential_of_other_account_is_400(client, client2, service):
    foreign = client2.chat.v2.credentials.create(type="fcm", secret=FCM_SECRET)
    try:
        resp = register_ext(service.sid, "dave", "fcm", "tok", credential_sid=foreign.sid)
        assert_error_body(resp, 400)
        assert client.chat.v2.services(service.sid).bindings.list(identity=["dave"]) == []
    finally:
        client2.chat.v2.credentials(foreign.sid).delete()


@pytest.mark.ext
def test_ext_requires_auth(service, fcm_cred):
    resp = register_ext(service.sid, "dave", "fcm", "tok", credential_sid=fcm_cred.sid,
                        auth=(ACCOUNT_SID, "bad"))
    assert_error_body(resp, 401, 20003)


@pytest.mark.ext
def test_ext_other_accounts_service_is_404(service):
    resp = register_ext(service.sid, "dave", "fcm", "tok", auth=(ACCOUNT2_SID, ACCOUNT2_AUTH_TOKEN))
    assert_error_body(resp, 404, 20404)


@pytest.mark.ext
@pytest.mark.parley_policy
def test_ext_per_user_cap_evicts_oldest(client, service, fcm_cred):
    sids = [ext_ok(register_ext(service.sid, "hoarder", "fcm", f"tok{i}", endpoint=f"ep{i}",
                                credential_sid=fcm_cred.sid))["sid"]
            for i in range(22)]
    listed = {b.sid for b in client.chat.v2.services(service.sid).users("hoarder").user_bindings.list()}
    assert len(listed) == 20
    assert listed == set(sids[2:])


# --------------------------------------------------------------------------------------------
# (b) Twilio SDK registration door (/v1/registrations)

@pytest.mark.ers
def test_ers_register_and_unregister(client, service, fcm_cred):
    token = make_token("erin", service.sid, push_credential_sid=fcm_cred.sid,
                       endpoint_id="MyApp:erin:device-1")
    resp = register_ers(token, ers_body("fcm-device-token-erin"))
    assert resp.status_code in (200, 201), resp.text
    reg = resp.json()
    bs = reg["id"]
    assert bs.startswith("BS") and len(bs) == 34
    assert reg.get("identity") == "erin", reg
    assert reg.get("binding_type") == "fcm", reg
    # visible through REST with the library
    b = client.chat.v2.services(service.sid).bindings(bs).fetch()
    assert b.identity == "erin"
    assert b.binding_type == "fcm"
    assert b.credential_sid == fcm_cred.sid
    assert sorted(b.message_types) == ["added_to_channel", "new_message"]  # prefix stripped
    assert isinstance(b.endpoint, str) and b.endpoint
    user = client.chat.v2.services(service.sid).users("erin").fetch()
    ub = client.chat.v2.services(service.sid).users("erin").user_bindings(bs).fetch()
    assert ub.user_sid == user.sid

    # the same device registering again refreshes the same binding
    again = register_ers(token, ers_body("fcm-device-token-erin"))
    assert again.status_code in (200, 201), again.text
    assert again.json()["id"] == bs
    assert len(client.chat.v2.services(service.sid).bindings.list(identity=["erin"])) == 1

    anonymous = requests.delete(f"{PARLEY_URL}/v1/registrations/{bs}",
                                params={"productId": "ip_messaging"}, timeout=30)
    assert anonymous.status_code == 401, anonymous.text
    gone = unregister_ers(token, bs)
    assert gone.status_code in (200, 204), gone.text
    with raises_rest(404, 20404):
        client.chat.v2.services(service.sid).bindings(bs).fetch()


@pytest.mark.ers
def test_ers_register_apn(client, service, apn_cred):
    token = make_token("frank", service.sid, push_credential_sid=apn_cred.sid)
    resp = register_ers(token, ers_body("a" * 64, channel_type="apn"))
    assert resp.status_code in (200, 201), resp.text
    b = client.chat.v2.services(service.sid).bindings(resp.json()["id"]).fetch()
    assert b.binding_type == "apn"
    assert b.credential_sid == apn_cred.sid


def _assert_ers_rejected(client, service_sid, resp, statuses, identity):
    assert resp.status_code in statuses, f"HTTP {resp.status_code}: {resp.text[:300]}"
    assert client.chat.v2.services(service_sid).bindings.list(identity=[identity]) == []


@pytest.mark.ers
def test_ers_expired_token_is_401(client, service, fcm_cred):
    now = int(time.time())
    token = make_token("gina", service.sid, nbf=now - 7200, valid_until=now - 3600,
                       push_credential_sid=fcm_cred.sid)
    _assert_ers_rejected(client, service.sid, register_ers(token, ers_body("t")), (401,), "gina")


@pytest.mark.ers
def test_ers_wrong_signature_is_401(client, service, fcm_cred):
    token = make_token("gina", service.sid, key_secret="not-the-secret-" + "x" * 20,
                       push_credential_sid=fcm_cred.sid)
    _assert_ers_rejected(client, service.sid, register_ers(token, ers_body("t")), (401,), "gina")


@pytest.mark.ers
def test_ers_missing_token_is_401(client, service, fcm_cred):
    _assert_ers_rejected(client, service.sid, register_ers(None, ers_body("t")), (401,), "gina")


@pytest.mark.ers
def test_ers_other_accounts_api_key_is_rejected(client, service, fcm_cred):
    if not ACCOUNT2_API_KEY_SID:
        pytest.fail("ACCOUNT2_API_KEY_SID not set: compat/run creates it with `parley api-key create`")
    # signed correctly with account 2's key, but claiming to be account 1 (sub)
    token = make_token("gina", service.sid, key_sid=ACCOUNT2_API_KEY_SID,
                       key_secret=ACCOUNT2_API_KEY_SECRET, push_credential_sid=fcm_cred.sid)
    _assert_ers_rejected(client, service.sid, register_ers(token, ers_body("t")), (401, 403), "gina")


@pytest.mark.ers
def test_ers_service_of_other_account_in_grant_is_rejected(client, client2, service2, fcm_cred):
    # account 1's key, but the grant names account 2's service
    token = make_token("gina", service2.sid, push_credential_sid=fcm_cred.sid)
    resp = register_ers(token, ers_body("t"))
    _assert_ers_rejected(client2, service2.sid, resp, (401, 403, 404), "gina")


@pytest.mark.ers
def test_ers_unknown_service_in_grant_is_rejected(client, service, fcm_cred):
    token = make_token("gina", "IS" + "9" * 32, push_credential_sid=fcm_cred.sid)
    resp = register_ers(token, ers_body("t"))
    assert resp.status_code in (401, 403, 404), resp.text


@pytest.mark.ers
def test_ers_missing_address_is_400(client, service, fcm_cred):
    token = make_token("gina", service.sid, push_credential_sid=fcm_cred.sid)
    body = ers_body("t")
    body["data"] = {}
    _assert_ers_rejected(client, service.sid, register_ers(token, body), (400,), "gina")


@pytest.mark.ers
def test_ers_unknown_channel_type_is_400(client, service, fcm_cred):
    token = make_token("gina", service.sid, push_credential_sid=fcm_cred.sid)
    _assert_ers_rejected(client, service.sid, register_ers(token, ers_body("t", channel_type="sms")),
                         (400,), "gina")


@pytest.mark.ers
def test_ers_token_not_yet_valid_is_401(client, service, fcm_cred):
    now = int(time.time())
    token = make_token("gina", service.sid, nbf=now + 3600, valid_until=now + 7200,
                       push_credential_sid=fcm_cred.sid)
    _assert_ers_rejected(client, service.sid, register_ers(token, ers_body("t")), (401,), "gina")


@pytest.mark.ers
def test_ers_token_without_chat_grant_is_rejected(client, service, fcm_cred):
    token = AccessToken(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, identity="gina").to_jwt()
    _assert_ers_rejected(client, service.sid, register_ers(token, ers_body("t")), (401, 403), "gina")


@pytest.mark.ers
def test_ers_wrong_product_id_is_400(client, service, fcm_cred):
    token = make_token("gina", service.sid, push_credential_sid=fcm_cred.sid)
    resp = requests.post(f"{PARLEY_URL}/v1/registrations", params={"productId": "video"},
                         headers={"X-Twilio-Token": token}, json=ers_body("t"), timeout=30)
    _assert_ers_rejected(client, service.sid, resp, (400,), "gina")


@pytest.mark.ers
def test_ers_credential_of_wrong_type_is_400(client, service, fcm_cred):
    token = make_token("gina", service.sid, push_credential_sid=fcm_cred.sid)
    resp = register_ers(token, ers_body("a" * 64, channel_type="apn"))
    _assert_ers_rejected(client, service.sid, resp, (400,), "gina")


@pytest.mark.ers
def test_ers_bulk_remove_by_address(client, service, fcm_cred):
    # @twilio/notifications 1.x: DELETE <ersUrl>?productId=… with {"binding_type","address"}
    token = make_token("jill", service.sid, push_credential_sid=fcm_cred.sid)
    keep = register_ers(token, ers_body("jill-keep")).json()["id"]
    drop = register_ers(token, ers_body("jill-drop")).json()["id"]
    resp = requests.delete(f"{PARLEY_URL}/v1/registrations", params={"productId": "ip_messaging"},
                           headers={"X-Twilio-Token": token},
                           json={"binding_type": "fcm", "address": "jill-drop"}, timeout=30)
    assert resp.status_code in (200, 204), resp.text
    left = [b.sid for b in client.chat.v2.services(service.sid).bindings.list(identity=["jill"])]
    assert left == [keep]
    assert drop not in left


@pytest.mark.ers
def test_ers_registration_makes_user_notifiable(client, service, fcm_cred):
    client.chat.v2.services(service.sid).update(reachability_enabled=True)
    client.chat.v2.services(service.sid).users.create(identity="kim")
    assert client.chat.v2.services(service.sid).users("kim").fetch().is_notifiable is False
    token = make_token("kim", service.sid, push_credential_sid=fcm_cred.sid)
    assert register_ers(token, ers_body("kim-device")).status_code in (200, 201)
    assert client.chat.v2.services(service.sid).users("kim").fetch().is_notifiable is True


@pytest.mark.ers
def test_ers_delete_with_other_identity_token_is_refused(client, service, fcm_cred):
    owner = make_token("hank", service.sid, push_credential_sid=fcm_cred.sid)
    bs = register_ers(owner, ers_body("hank-token")).json()["id"]
    thief = make_token("ivan", service.sid)
    resp = unregister_ers(thief, bs)
    assert resp.status_code in (403, 404), resp.text
    assert client.chat.v2.services(service.sid).bindings(bs).fetch().identity == "hank"


# --------------------------------------------------------------------------------------------
# reading and deleting through the official library

@pytest.fixture
def populated(service, apn_cred, fcm_cred):
    """alice@example.com: 2 apn + 1 fcm; bob smith: 1 apn + 1 fcm; carol: 1 fcm."""
    made = {}
    plan = [("alice@example.com", "apn", "a1"), ("alice@example.com", "apn", "a2"),
            ("alice@example.com", "fcm", "a3"), ("bob smith", "apn", "b1"),
            ("bob smith", "fcm", "b2"), ("carol", "fcm", "c1")]
    for identity, btype, tag in plan:
        cred = apn_cred if btype == "apn" else fcm_cred
        b = ext_ok(register_ext(service.sid, identity, btype, f"addr-{tag}",
                                credential_sid=cred.sid, endpoint=f"ep-{tag}"))
        made[tag] = b["sid"]
    return made


def test_user_bindings_list_filters_by_type(client, service, populated):
    ub = client.chat.v2.services(service.sid).users("alice@example.com").user_bindings
    apn = ub.list(binding_type=["apn"])
    assert sorted(b.sid for b in apn) == sorted([populated["a1"], populated["a2"]])
    assert all(b.binding_type == "apn" for b in apn)
    both = ub.list(binding_type=["apn", "fcm"])
    assert len(both) == 3
    assert len(ub.list()) == 3
    body = http(client).last_json()
    assert body["meta"]["key"] == "bindings"
    assert all("links" not in b for b in body["bindings"])  # user bindings have no links
    user = client.chat.v2.services(service.sid).users("alice@example.com").fetch()
    for b in both:
        assert b.user_sid == user.sid
        assert b.identity == "alice@example.com"
        assert b.account_sid == ACCOUNT_SID and b.service_sid == service.sid
        assert b.url == f"{PARLEY_URL}/v2/Services/{service.sid}/Users/{user.sid}/Bindings/{b.sid}"


def test_user_binding_fetch_and_delete_via_identity_path(client, service, populated):
    svc = client.chat.v2.services(service.sid)
    b = svc.users("bob smith").user_bindings(populated["b1"]).fetch()
    assert b.sid == populated["b1"] and b.binding_type == "apn" and b.endpoint == "ep-b1"
    assert isinstance(b.date_created, datetime) and isinstance(b.date_updated, datetime)
    assert svc.users("bob smith").user_bindings(populated["b1"]).delete() is True
    with raises_rest(404, 20404):
        svc.users("bob smith").user_bindings(populated["b1"]).fetch()
    with raises_rest(404, 20404):
        svc.bindings(populated["b1"]).fetch()
    assert [x.sid for x in svc.users("bob smith").user_bindings.list()] == [populated["b2"]]


def test_user_binding_of_another_user_is_404(client, service, populated):
    with raises_rest(404, 20404):
        client.chat.v2.services(service.sid).users("carol").user_bindings(populated["a1"]).fetch()
    with raises_rest(404, 20404):
        client.chat.v2.services(service.sid).users("carol").user_bindings(populated["a1"]).delete()
    assert client.chat.v2.services(service.sid).bindings(populated["a1"]).fetch().sid == populated["a1"]


def test_service_bindings_filters(client, service, populated):
    bindings = client.chat.v2.services(service.sid).bindings
    assert len(bindings.list()) == 6
    alice_apn = bindings.list(identity=["alice@example.com"], binding_type=["apn"])
    assert sorted(b.sid for b in alice_apn) == sorted([populated["a1"], populated["a2"]])
    two = bindings.list(identity=["alice@example.com", "carol"])
    assert sorted(b.sid for b in two) == sorted([populated[t] for t in ("a1", "a2", "a3", "c1")])
    fcm = bindings.list(binding_type=["fcm"])
    assert sorted(b.sid for b in fcm) == sorted([populated[t] for t in ("a3", "b2", "c1")])
    assert bindings.list(identity=["nobody"]) == []


def test_service_binding_fetch_links_and_delete(client, service, populated):
    svc = client.chat.v2.services(service.sid)
    b = svc.bindings(populated["b2"]).fetch()
    assert b.identity == "bob smith"
    assert b.binding_type == "fcm"
    assert b.url == f"{PARLEY_URL}/v2/Services/{service.sid}/Bindings/{b.sid}"
    # links.user is built with the identity, not the US SID
    assert unquote(b.links["user"]) == f"{PARLEY_URL}/v2/Services/{service.sid}/Users/bob smith"
    c = svc.bindings(populated["c1"]).fetch()
    assert c.links == {"user": f"{PARLEY_URL}/v2/Services/{service.sid}/Users/carol"}
    assert "user_sid" not in http(client).last_json()
    assert svc.bindings(populated["c1"]).delete() is True
    with raises_rest(404, 20404):
        svc.bindings(populated["c1"]).fetch()
    with raises_rest(404, 20404):
        svc.users("carol").user_bindings(populated["c1"]).fetch()


def test_deleting_user_removes_its_bindings(client, service, populated):
    svc = client.chat.v2.services(service.sid)
    svc.users("carol").delete()
    assert svc.bindings.list(identity=["carol"]) == []
    with raises_rest(404, 20404):
        svc.bindings(populated["c1"]).fetch()


def test_bindings_invisible_to_other_account(client2, service, populated):
    with raises_rest(404, 20404):
        client2.chat.v2.services(service.sid).bindings(populated["a1"]).fetch()
    with raises_rest(404, 20404):
        client2.chat.v2.services(service.sid).bindings(populated["a1"]).delete()
    with raises_list_error():
        client2.chat.v2.services(service.sid).bindings.list()


def test_identity_filter_with_space_survives_paging(client, service, populated):
    http(client).clear()
    listed = client.chat.v2.services(service.sid).bindings.list(identity=["bob smith"], page_size=1)
    assert sorted(b.sid for b in listed) == sorted([populated["b1"], populated["b2"]])
    assert len(http(client).gets()) >= 2


def test_unknown_binding_type_filter_is_rejected(client, service, populated):
    with raises_list_error():
        client.chat.v2.services(service.sid).bindings.list(binding_type=["sms"])


def test_user_bindings_paging(client, service, fcm_cred):
    sids = [ext_ok(register_ext(service.sid, "pager", "fcm", f"tok{i}", endpoint=f"ep{i}",
                                credential_sid=fcm_cred.sid))["sid"]
            for i in range(15)]
    ub = client.chat.v2.services(service.sid).users("pager").user_bindings
    http(client).clear()
    listed = ub.list(page_size=5)
    assert sorted(b.sid for b in listed) == sorted(sids)
    gets = http(client).gets()
    assert len(gets) >= 3
    assert all(url.startswith(PARLEY_URL) for _, url, _, _ in gets)
    assert sorted(b.sid for b in ub.stream(page_size=4)) == sorted(sids)
    assert len(ub.list(limit=7, page_size=5)) == 7
    # limit above the max page size (50): library sends PageSize=60, server clamps
    http(client).clear()
    assert sorted(b.sid for b in ub.list(limit=60)) == sorted(sids)
    assert str(http(client).gets()[0][2]["PageSize"]) == "60"


def test_service_bindings_paging(client, service, apn_cred):
    sids = []
    for u in range(3):
        for i in range(5):
            sids.append(ext_ok(register_ext(service.sid, f"u{u}", "apn", f"t{u}-{i}",
                                            endpoint=f"e{u}-{i}", credential_sid=apn_cred.sid))["sid"])
    http(client).clear()
    listed = client.chat.v2.services(service.sid).bindings.list(page_size=4)
    assert sorted(b.sid for b in listed) == sorted(sids)
    assert len(http(client).gets()) >= 4
    http(client).clear()
    filtered = client.chat.v2.services(service.sid).bindings.list(
        identity=["u0", "u2"], binding_type=["apn"], page_size=3)
    assert sorted(b.sid for b in filtered) == sorted(sids[:5] + sids[10:])
    # the filters are repeated in the next-page URLs the library follows verbatim
    follow_ups = [url for _, url, _, _ in http(client).gets()[1:]]
    assert len(follow_ups) >= 3
    for url in follow_ups:
        assert "Identity=u0" in url and "Identity=u2" in url and "BindingType=apn" in url, url
    assert len(client.chat.v2.services(service.sid).bindings.list(limit=100)) == 15


@pytest.mark.ext
def test_identity_filter_matches_literally(client, service, fcm_cred):
    # "a_c" must not act as a pattern matching "abc" (no LIKE semantics), and case matters.
    made = {}
    for identity in ("abc", "a_c", "ABC"):
        made[identity] = ext_ok(register_ext(service.sid, identity, "fcm", f"t-{identity}",
                                             credential_sid=fcm_cred.sid))["sid"]
    bindings = client.chat.v2.services(service.sid).bindings
    assert [b.sid for b in bindings.list(identity=["a_c"])] == [made["a_c"]]
    assert [b.sid for b in bindings.list(identity=["abc"])] == [made["abc"]]
    assert bindings.list(identity=["a%"]) == []
