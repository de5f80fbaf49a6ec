"""Awkward but legal text in form fields: answered with 2xx (value kept) or 400, never 5xx."""

import pytest
from twilio.base.exceptions import TwilioRestException

from conftest import raises_rest
from push_fixtures import FCM_SECRET

NUL = "nul\x00byte"


def _created_or_400(create, read_back, value):
    try:
        obj = create()
    except TwilioRestException as exc:
        assert exc.status == 400, f"HTTP {exc.status} code {exc.code}: {exc.msg}"
        return
    assert read_back(obj) == value


def test_nul_byte_in_service_friendly_name(client):
    def create():
        return client.chat.v2.services.create(friendly_name=NUL)
    created = []
    try:
        _created_or_400(lambda: created.append(create()) or created[-1],
                        lambda s: client.chat.v2.services(s.sid).fetch().friendly_name, NUL)
    finally:
        for s in created:
            client.chat.v2.services(s.sid).delete()


def test_nul_byte_in_user_fields(client, service):
    users = client.chat.v2.services(service.sid).users
    _created_or_400(lambda: users.create(identity=NUL),
                    lambda u: users(u.sid).fetch().identity, NUL)
    _created_or_400(lambda: users.create(identity="plain", friendly_name=NUL),
                    lambda u: users(u.sid).fetch().friendly_name, NUL)


def test_nul_byte_in_role_and_credential_names(client, service):
    roles = client.chat.v2.services(service.sid).roles
    _created_or_400(lambda: roles.create(friendly_name=NUL, type="channel",
                                         permission=["sendMessage"]),
                    lambda r: roles(r.sid).fetch().friendly_name, NUL)
    made = []

    def create_cred():
        made.append(client.chat.v2.credentials.create(type="fcm", friendly_name=NUL, secret=FCM_SECRET))
        return made[-1]
    try:
        _created_or_400(create_cred, lambda c: client.chat.v2.credentials(c.sid).fetch().friendly_name,
                        NUL)
    finally:
        for c in made:
            client.chat.v2.credentials(c.sid).delete()


@pytest.mark.parametrize("identity", ["a" * 257, "x" * 1024])
def test_overlong_identity_is_400(client, service, identity):
    with raises_rest(400, (20001, 50207)):
        client.chat.v2.services(service.sid).users.create(identity=identity)


def test_nul_byte_in_identity_path_is_404(client, service):
    with raises_rest(404, 20404):
        client.chat.v2.services(service.sid).users(NUL).fetch()


@pytest.mark.ext
def test_nul_byte_in_binding_address_or_endpoint(client, service):
    from test_bindings import register_ext
    cred = client.chat.v2.credentials.create(type="fcm", secret=FCM_SECRET)
    try:
        for kw in ({"address": NUL}, {"address": "ok", "endpoint": NUL}):
            address = kw.pop("address")
            resp = register_ext(service.sid, "nul-user", "fcm", address,
                                credential_sid=cred.sid, **kw)
            assert resp.status_code in (200, 201, 400), f"HTTP {resp.status_code}: {resp.text[:200]}"
    finally:
        client.chat.v2.credentials(cred.sid).delete()
