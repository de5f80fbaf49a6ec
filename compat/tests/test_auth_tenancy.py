"""Authentication (HTTP Basic with AC/token or SK/secret) and account isolation."""

import pytest

from conftest import (ACCOUNT2_API_KEY_SECRET, ACCOUNT2_API_KEY_SID, ACCOUNT_SID, API_KEY_SID,
                      AUTH_TOKEN, assert_error_body, make_client, raises_list_error, raises_rest,
                      raw, unique)
from push_fixtures import FCM_SECRET


def test_wrong_auth_token_is_401(service):
    bad = make_client(ACCOUNT_SID, "0" * 32)
    with raises_rest(401, 20003):
        bad.chat.v2.services(service.sid).fetch()
    with raises_rest(401, 20003):
        bad.chat.v2.services.create(friendly_name="nope")


def test_wrong_auth_list_raises_library_page_error():
    bad = make_client(ACCOUNT_SID, "0" * 32)
    with raises_list_error():
        bad.chat.v2.services.list()


def test_unknown_account_is_401():
    bad = make_client("AC" + "1" * 32, AUTH_TOKEN)
    with raises_rest(401, 20003):
        bad.chat.v2.credentials.create(type="fcm", secret=FCM_SECRET)


def test_api_key_wrong_secret_is_401(service):
    bad = make_client(API_KEY_SID, "wrong-secret", ACCOUNT_SID)
    with raises_rest(401, 20003):
        bad.chat.v2.services(service.sid).fetch()


def test_no_credentials_is_401_with_twilio_error_body():
    resp = raw("GET", "/v2/Services", auth=None)
    assert_error_body(resp, 401, 20003)


def test_api_key_works_and_acts_for_its_account(key_client, client):
    svc = key_client.chat.v2.services.create(friendly_name=unique("bykey"))
    try:
        assert svc.account_sid == ACCOUNT_SID
        # the account's own credentials see what the key created, and vice versa
        assert client.chat.v2.services(svc.sid).fetch().sid == svc.sid
        user = key_client.chat.v2.services(svc.sid).users.create(identity="keyed")
        assert user.account_sid == ACCOUNT_SID
    finally:
        key_client.chat.v2.services(svc.sid).delete()


def test_second_account_cannot_see_first_accounts_service(client2, service):
    s = client2.chat.v2.services(service.sid)
    with raises_rest(404, 20404):
        s.fetch()
    with raises_rest(404, 20404):
        s.update(friendly_name="hijack")
    with raises_rest(404, 20404):
        s.delete()
    with raises_rest(404, 20404):
        s.users.create(identity="intruder")
    with raises_rest(404, 20404):
        s.roles.create(friendly_name="r", type="channel", permission=["sendMessage"])
    with raises_list_error():
        s.users.list()
    assert service.sid not in [x.sid for x in client2.chat.v2.services.list()]


def test_first_account_still_intact_after_second_account_attempts(client, client2, service):
    client.chat.v2.services(service.sid).users.create(identity="owner")
    with raises_rest(404, 20404):
        client2.chat.v2.services(service.sid).users("owner").fetch()
    with raises_rest(404, 20404):
        client2.chat.v2.services(service.sid).users("owner").delete()
    assert client.chat.v2.services(service.sid).users("owner").fetch().identity == "owner"
    assert client.chat.v2.services(service.sid).fetch().friendly_name == service.friendly_name


def test_second_account_cannot_touch_first_accounts_credential(client, client2):
    cred = client.chat.v2.credentials.create(type="fcm", friendly_name="mine", secret=FCM_SECRET)
    try:
        with raises_rest(404, 20404):
            client2.chat.v2.credentials(cred.sid).fetch()
        with raises_rest(404, 20404):
            client2.chat.v2.credentials(cred.sid).update(friendly_name="theirs")
        with raises_rest(404, 20404):
            client2.chat.v2.credentials(cred.sid).delete()
        assert cred.sid not in [c.sid for c in client2.chat.v2.credentials.list()]
        assert client.chat.v2.credentials(cred.sid).fetch().friendly_name == "mine"
    finally:
        client.chat.v2.credentials(cred.sid).delete()


def test_other_accounts_api_key_cannot_reach_first_account(service):
    if not ACCOUNT2_API_KEY_SID:
        pytest.fail("ACCOUNT2_API_KEY_SID not set: compat/run creates it with `parley api-key create`")
    # Library told "account ACCOUNT_SID" but authenticating with account 2's key: the key decides.
    other = make_client(ACCOUNT2_API_KEY_SID, ACCOUNT2_API_KEY_SECRET, ACCOUNT_SID)
    with raises_rest(404, 20404):
        other.chat.v2.services(service.sid).fetch()
