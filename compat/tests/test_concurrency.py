"""Races a real deployment sees: many clients creating the same thing at once.
Every request must get a proper answer (no 5xx) and the stored result must be single."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from twilio.base.exceptions import TwilioRestException

from conftest import ACCOUNT_SID, AUTH_TOKEN, make_client
from push_fixtures import FCM_SECRET

N = 8


def _parallel(fn, n=N):
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda i: fn(i), range(n)))


def test_concurrent_creates_of_one_identity_give_one_user(service):
    def create(_):
        c = make_client(ACCOUNT_SID, AUTH_TOKEN)
        try:
            c.chat.v2.services(service.sid).users.create(identity="racer")
            return 201
        except TwilioRestException as exc:
            return (exc.status, exc.code)
    results = _parallel(create)
    assert results.count(201) == 1, results
    assert all(r == 201 or r == (409, 50201) for r in results), results
    c = make_client(ACCOUNT_SID, AUTH_TOKEN)
    assert [u.identity for u in c.chat.v2.services(service.sid).users.list()] == ["racer"]


@pytest.mark.ext
def test_concurrent_registrations_of_one_device_give_one_binding(client, service):
    from test_bindings import register_ext
    cred = client.chat.v2.credentials.create(type="fcm", secret=FCM_SECRET)
    try:
        def register(_):
            r = register_ext(service.sid, "new-racer", "fcm", "same-device",
                             credential_sid=cred.sid, endpoint="same-endpoint")
            return r.status_code
        statuses = _parallel(register)
        assert all(s in (200, 201) for s in statuses), statuses
        assert statuses.count(201) == 1, statuses
        svc = client.chat.v2.services(service.sid)
        assert len(svc.bindings.list(identity=["new-racer"])) == 1
        assert [u.identity for u in svc.users.list()] == ["new-racer"]
    finally:
        client.chat.v2.credentials(cred.sid).delete()


@pytest.mark.ext
@pytest.mark.parley_policy
def test_concurrent_registrations_of_many_devices_respect_the_cap(client, service):
    # 30 devices of one user registering at once, three times over (the race is probabilistic).
    from test_bindings import register_ext
    cred = client.chat.v2.credentials.create(type="fcm", secret=FCM_SECRET)
    try:
        counts = {}
        for round_ in range(3):
            identity = f"many-{round_}"

            def register(i):
                return register_ext(service.sid, identity, "fcm", f"device-{round_}-{i}",
                                    credential_sid=cred.sid, endpoint=f"endpoint-{i}").status_code
            with ThreadPoolExecutor(max_workers=12) as pool:
                statuses = list(pool.map(register, range(30)))
            assert all(s == 201 for s in statuses), statuses
            ub = client.chat.v2.services(service.sid).users(identity).user_bindings
            counts[identity] = len(ub.list())
        assert counts == {f"many-{r}": 20 for r in range(3)}, f"default per-user cap is 20: {counts}"
    finally:
        client.chat.v2.credentials(cred.sid).delete()
