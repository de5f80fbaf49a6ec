"""Users (contract §4) through the official library, including identity-addressed paths."""

import json
from datetime import datetime

from twilio.base import values

from conftest import ACCOUNT_SID, PARLEY_URL, http, raises_rest


def test_create_user_returns_full_representation(client, service):
    users = client.chat.v2.services(service.sid).users
    user = users.create(identity="alice@example.com", friendly_name="Alice",
                        attributes=json.dumps({"team": "blue"}))
    assert http(client).sent[-1][3].status_code == 201
    assert user.sid.startswith("US") and len(user.sid) == 34
    assert user.account_sid == ACCOUNT_SID
    assert user.service_sid == service.sid
    assert user.identity == "alice@example.com"
    assert user.friendly_name == "Alice"
    assert json.loads(user.attributes) == {"team": "blue"}  # attributes travel as a JSON string
    assert user.role_sid == service.default_service_role_sid
    assert user.joined_channels_count == 0
    assert isinstance(user.date_created, datetime)
    base = f"{PARLEY_URL}/v2/Services/{service.sid}/Users/{user.sid}"
    assert user.url == base
    assert user.links == {"user_channels": f"{base}/Channels", "user_bindings": f"{base}/Bindings"}


def test_fetch_by_sid_and_by_identity(client, service):
    users = client.chat.v2.services(service.sid).users
    alice = users.create(identity="alice@example.com")
    bob = users.create(identity="bob smith")
    svc = client.chat.v2.services(service.sid)
    assert svc.users(alice.sid).fetch().identity == "alice@example.com"
    assert svc.users("alice@example.com").fetch().sid == alice.sid
    # The library puts the identity into the path as-is; requests sends the space as %20.
    assert svc.users("bob smith").fetch().sid == bob.sid


def test_update_by_identity(client, service):
    svc = client.chat.v2.services(service.sid)
    user = svc.users.create(identity="bob smith")
    role = svc.roles.create(friendly_name="helper", type="deployment",
                            permission=["createChannel", "editOwnUserInfo"])
    updated = svc.users("bob smith").update(friendly_name="Bob", attributes='{"x":1}',
                                            role_sid=role.sid)
    assert updated.sid == user.sid
    assert updated.friendly_name == "Bob"
    assert json.loads(updated.attributes) == {"x": 1}
    assert updated.role_sid == role.sid
    fetched = svc.users(user.sid).fetch()
    assert fetched.friendly_name == "Bob"
    assert fetched.role_sid == role.sid
    assert fetched.date_updated >= fetched.date_created


def test_delete_by_identity_and_by_sid(client, service):
    svc = client.chat.v2.services(service.sid)
    a = svc.users.create(identity="alice@example.com")
    b = svc.users.create(identity="bob smith")
    assert svc.users("alice@example.com").delete() is True
    assert svc.users(b.sid).delete() is True
    for key in (a.sid, "alice@example.com", b.sid, "bob smith"):
        with raises_rest(404, 20404):
            svc.users(key).fetch()
    # identity can be reused after delete
    again = svc.users.create(identity="alice@example.com")
    assert again.sid != a.sid


def test_duplicate_identity_is_409_50201(client, service):
    svc = client.chat.v2.services(service.sid)
    svc.users.create(identity="alice@example.com")
    with raises_rest(409, 50201):
        svc.users.create(identity="alice@example.com")


def test_same_identity_in_two_services_is_fine(client, service):
    other = client.chat.v2.services.create(friendly_name="other")
    try:
        a = client.chat.v2.services(service.sid).users.create(identity="alice@example.com")
        b = client.chat.v2.services(other.sid).users.create(identity="alice@example.com")
        assert a.sid != b.sid
    finally:
        client.chat.v2.services(other.sid).delete()


def test_missing_identity_is_400_20001(client, service):
    # values.unset makes the library leave Identity out of the form entirely.
    with raises_rest(400, 20001) as box:
        client.chat.v2.services(service.sid).users.create(identity=values.unset)
    assert "Identity" in box["exc"].msg


def test_unknown_role_sid_on_create_is_rejected(client, service):
    with raises_rest(400, 50102):
        client.chat.v2.services(service.sid).users.create(identity="x", role_sid="RL" + "0" * 32)


def test_fetch_unknown_user_is_404(client, service):
    with raises_rest(404, 20404):
        client.chat.v2.services(service.sid).users("US" + "0" * 32).fetch()
    with raises_rest(404, 20404):
        client.chat.v2.services(service.sid).users("nobody-here").fetch()


def _make_users(client, service, n):
    users = client.chat.v2.services(service.sid).users
    return [users.create(identity=f"user{i:02d}") for i in range(n)]


def test_list_iterates_across_pages(client, service):
    made = _make_users(client, service, 7)
    http(client).clear()
    listed = client.chat.v2.services(service.sid).users.list(page_size=2)
    assert [u.identity for u in listed] == [u.identity for u in made]  # creation order, no dups
    gets = http(client).gets()
    assert len(gets) >= 4, f"7 users at page_size=2 need 4 pages, saw {len(gets)} requests"
    assert all(url.startswith(PARLEY_URL) for _, url, _, _ in gets)
    # is_online / is_notifiable are null in list results
    assert all(u.is_online is None and u.is_notifiable is None for u in listed)


def test_stream_iterates_across_pages(client, service):
    made = _make_users(client, service, 7)
    http(client).clear()
    streamed = list(client.chat.v2.services(service.sid).users.stream(page_size=3))
    assert sorted(u.sid for u in streamed) == sorted(u.sid for u in made)
    assert len(http(client).gets()) >= 3


def test_page_next_and_previous(client, service):
    made = _make_users(client, service, 5)
    users = client.chat.v2.services(service.sid).users
    first = users.page(page_size=2)
    assert [u.sid for u in first] == [u.sid for u in made[:2]]
    second = first.next_page()
    assert [u.sid for u in second] == [u.sid for u in made[2:4]]
    third = second.next_page()
    assert [u.sid for u in third] == [u.sid for u in made[4:]]
    assert third.next_page() is None
    back = third.previous_page()
    assert [u.sid for u in back] == [u.sid for u in made[2:4]]
    assert [u.sid for u in back.previous_page()] == [u.sid for u in made[:2]]
    assert first.previous_page() is None


def test_create_with_webhook_header_accepted(client, service):
    user = client.chat.v2.services(service.sid).users.create(identity="hooked",
                                                             x_twilio_webhook_enabled="true")
    assert user.identity == "hooked"


def test_list_limit_stops_early(client, service):
    _make_users(client, service, 7)
    listed = client.chat.v2.services(service.sid).users.list(limit=5, page_size=2)
    assert len(listed) == 5


def test_list_limit_bigger_than_max_page_size(client, service):
    made = _make_users(client, service, 3)
    http(client).clear()
    listed = client.chat.v2.services(service.sid).users.list(limit=250)  # PageSize=250 > max 100
    assert str(http(client).gets()[0][2]["PageSize"]) == "250"
    assert sorted(u.sid for u in listed) == sorted(u.sid for u in made)
    assert http(client).last_json()["meta"]["page_size"] <= 100


def test_users_of_unknown_service_is_404(client):
    with raises_rest(404, 20404):
        client.chat.v2.services("IS" + "a" * 32).users.create(identity="ghost")


def test_attributes_must_be_json(client, service):
    with raises_rest(400, 50304):
        client.chat.v2.services(service.sid).users.create(identity="bad-attrs", attributes="{not json")
    user = client.chat.v2.services(service.sid).users.create(identity="good-attrs")
    with raises_rest(400, 50304):
        client.chat.v2.services(service.sid).users(user.sid).update(attributes="[unclosed")
    assert client.chat.v2.services(service.sid).users(user.sid).fetch().identity == "good-attrs"


def test_reachability_flags_null_while_reachability_disabled(client, service):
    user = client.chat.v2.services(service.sid).users.create(identity="quiet")
    assert user.is_online is None and user.is_notifiable is None
    fetched = client.chat.v2.services(service.sid).users("quiet").fetch()
    assert fetched.is_online is None and fetched.is_notifiable is None


def test_reachability_enabled_flags_on_fetch_but_null_in_lists(client, service):
    client.chat.v2.services(service.sid).update(reachability_enabled=True)
    created = client.chat.v2.services(service.sid).users.create(identity="present")
    fetched = client.chat.v2.services(service.sid).users("present").fetch()
    for u in (created, fetched):
        assert isinstance(u.is_online, bool) and isinstance(u.is_notifiable, bool)
    assert fetched.is_notifiable is False  # no push binding yet
    listed = client.chat.v2.services(service.sid).users.list()
    assert [(u.is_online, u.is_notifiable) for u in listed] == [(None, None)]


def test_channel_role_cannot_be_a_users_role(client, service):
    with raises_rest(400, 50102):
        client.chat.v2.services(service.sid).users.create(
            identity="x", role_sid=service.default_channel_role_sid)


def test_paging_cursor_survives_deleting_a_seen_row(client, service):
    # Page tokens are cursors: removing a row already seen must not shift the next page.
    made = _make_users(client, service, 6)
    users = client.chat.v2.services(service.sid).users
    first = users.page(page_size=2)
    assert [u.sid for u in first] == [u.sid for u in made[:2]]
    users(made[0].sid).delete()
    second = first.next_page()
    assert [u.sid for u in second] == [u.sid for u in made[2:4]]
    client.chat.v2.services(service.sid).users.create(identity="latecomer")
    third = second.next_page()
    assert [u.sid for u in third] == [u.sid for u in made[4:6]]


def test_unicode_identity_in_path(client, service):
    user = client.chat.v2.services(service.sid).users.create(identity="zoë 😀")
    assert user.identity == "zoë 😀"
    assert client.chat.v2.services(service.sid).users("zoë 😀").fetch().sid == user.sid


def test_identity_shaped_like_a_user_sid_is_rejected(client, service):
    # Paths accept a US SID or an identity, so an identity that looks like a SID is ambiguous.
    with raises_rest(400, (20001, 50206)):
        client.chat.v2.services(service.sid).users.create(identity="US" + "ab" * 16)


def test_identities_are_case_sensitive_and_literal(client, service):
    users = client.chat.v2.services(service.sid).users
    upper = users.create(identity="Alice")
    lower = users.create(identity="alice")
    underscore = users.create(identity="a_ice")
    assert len({upper.sid, lower.sid, underscore.sid}) == 3
    assert users("Alice").fetch().sid == upper.sid
    assert users("alice").fetch().sid == lower.sid
    assert users("a_ice").fetch().sid == underscore.sid
    with raises_rest(404, 20404):
        users("ALICE").fetch()
