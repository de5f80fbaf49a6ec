"""Channels, Members, Messages, Invites and User Channels (contract §6–§10) through the official
twilio-python library: what an application using the library sees.

Everything goes through `client.chat.v2.services(sid)…`; the recording HTTP client is only used
to look at status codes and to count the page requests the library's own iteration makes.
"""

import json
import threading
from datetime import datetime, timedelta, timezone

from twilio.base import values
from twilio.base.exceptions import TwilioRestException

from conftest import (ACCOUNT_SID, AUTH_TOKEN, PARLEY_URL, http, make_client, raises_list_error,
                      raises_rest, unique)

MISSING_CH = "CH" + "0" * 32
MISSING_IM = "IM" + "0" * 32
MISSING_IN = "IN" + "0" * 32
MISSING_MB = "MB" + "0" * 32


def _status(client) -> int:
    """HTTP status of the last response the library received."""
    return http(client).sent[-1][3].status_code


def _is_utc_datetime(value) -> bool:
    return isinstance(value, datetime) and value.utcoffset() == timedelta(0)


def _page_gets(client, path_suffix: str):
    return [url for _, url, _, _ in http(client).gets() if url.split("?")[0].endswith(path_suffix)]


# ---------------------------------------------------------------------------------------------
# Channels (§7)


def test_channel_create_defaults(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    assert _status(client) == 201
    assert ch.sid.startswith("CH") and len(ch.sid) == 34
    assert ch.account_sid == ACCOUNT_SID
    assert ch.service_sid == service.sid
    assert ch.type == "public"
    assert ch.created_by == "system"
    assert ch.attributes == "{}"
    assert ch.friendly_name is None
    assert ch.unique_name is None
    assert ch.members_count == 0
    assert ch.messages_count == 0
    assert _is_utc_datetime(ch.date_created)
    assert _is_utc_datetime(ch.date_updated)  # non-null right after create
    assert ch.date_updated >= ch.date_created
    base = f"{PARLEY_URL}/v2/Services/{service.sid}/Channels/{ch.sid}"
    assert ch.url == base
    assert ch.links == {
        "members": f"{base}/Members",
        "messages": f"{base}/Messages",
        "invites": f"{base}/Invites",
        "webhooks": f"{base}/Webhooks",
        "last_message": None,
    }


def test_channel_create_with_fields_and_fetch_by_sid_and_unique_name(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create(friendly_name="General chat", unique_name="general",
                             attributes=json.dumps({"topic": "all"}), type="private",
                             created_by="alice")
    assert ch.friendly_name == "General chat"
    assert ch.unique_name == "general"
    assert json.loads(ch.attributes) == {"topic": "all"}
    assert ch.type == "private"
    assert ch.created_by == "alice"
    by_sid = svc.channels(ch.sid).fetch()
    by_name = svc.channels("general").fetch()
    for fetched in (by_sid, by_name):
        assert fetched.sid == ch.sid
        assert fetched.unique_name == "general"
        assert fetched.type == "private"
        assert fetched.date_created == ch.date_created
        assert _is_utc_datetime(fetched.date_created)


def test_channel_create_with_explicit_dates(client, service):
    svc = client.chat.v2.services(service.sid)
    when = datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    ch = svc.channels.create(date_created=when)
    assert ch.date_created == when
    assert svc.channels(ch.sid).fetch().date_created == when


def test_channel_update(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create(friendly_name="before", unique_name="before-name")
    updated = svc.channels(ch.sid).update(friendly_name="after", unique_name="after-name",
                                          attributes=json.dumps({"v": 2}))
    assert _status(client) == 200
    assert updated.sid == ch.sid
    assert updated.friendly_name == "after"
    assert updated.unique_name == "after-name"
    assert json.loads(updated.attributes) == {"v": 2}
    assert updated.type == "public"  # untouched
    assert updated.date_updated >= updated.date_created
    fetched = svc.channels("after-name").fetch()
    assert fetched.sid == ch.sid and fetched.friendly_name == "after"
    with raises_rest(404, 20404):
        svc.channels("before-name").fetch()
    # update addressed by unique name works too
    again = svc.channels("after-name").update(friendly_name="third")
    assert again.sid == ch.sid and again.friendly_name == "third"


def test_channel_delete_then_fetch_is_404(client, service):
    svc = client.chat.v2.services(service.sid)
    a = svc.channels.create(unique_name="doomed")
    b = svc.channels.create()
    svc.channels(a.sid).members.create(identity="alice")
    svc.channels(a.sid).messages.create(body="hello")
    assert svc.channels("doomed").delete() is True
    assert _status(client) == 204
    assert svc.channels(b.sid).delete() is True
    for key in (a.sid, "doomed", b.sid):
        with raises_rest(404, 20404):
            svc.channels(key).fetch()
    with raises_rest(404, 20404):
        svc.channels(a.sid).delete()
    with raises_list_error():
        svc.channels(a.sid).messages.list()
    # the unique name is free again
    assert svc.channels.create(unique_name="doomed").sid != a.sid
    # the member's user survives and is in no channel any more
    assert svc.users("alice").fetch().joined_channels_count == 0


def test_channel_unique_name_conflict_is_409_50307(client, service):
    svc = client.chat.v2.services(service.sid)
    svc.channels.create(unique_name="taken")
    with raises_rest(409, 50307):
        svc.channels.create(unique_name="taken")
    other = svc.channels.create(unique_name="other")
    with raises_rest(409, 50307):
        svc.channels(other.sid).update(unique_name="taken")
    assert svc.channels(other.sid).fetch().unique_name == "other"


def test_fetch_unknown_channel_is_404(client, service):
    svc = client.chat.v2.services(service.sid)
    with raises_rest(404, 20404):
        svc.channels(MISSING_CH).fetch()
    with raises_rest(404, 20404):
        svc.channels("no-such-unique-name").fetch()


def test_channel_list_defaults_to_public_and_filters_by_type(client, service):
    svc = client.chat.v2.services(service.sid)
    pub1 = svc.channels.create(friendly_name="pub1")
    priv = svc.channels.create(friendly_name="priv", type="private")
    pub2 = svc.channels.create(friendly_name="pub2", type="public")
    assert [c.sid for c in svc.channels.list()] == [pub1.sid, pub2.sid]
    assert [c.sid for c in svc.channels.list(type=["private"])] == [priv.sid]
    both = svc.channels.list(type=["public", "private"])
    assert [c.sid for c in both] == [pub1.sid, priv.sid, pub2.sid]
    assert all(_is_utc_datetime(c.date_created) for c in both)


def test_channel_paging_with_list_stream_and_page(client, service):
    svc = client.chat.v2.services(service.sid)
    made = [svc.channels.create(friendly_name=f"ch{i}") for i in range(7)]
    want = [c.sid for c in made]

    http(client).clear()
    listed = svc.channels.list(page_size=2)
    assert [c.sid for c in listed] == want  # creation order, no duplicates, nothing lost
    gets = _page_gets(client, "/Channels")
    assert len(gets) == 4, f"7 channels at page_size=2 are 4 pages, saw {len(gets)} requests"
    assert all(url.startswith(PARLEY_URL) for url in gets)

    http(client).clear()
    streamed = list(svc.channels.stream(page_size=3))
    assert [c.sid for c in streamed] == want
    assert len(_page_gets(client, "/Channels")) == 3

    assert [c.sid for c in svc.channels.stream(limit=5, page_size=2)] == want[:5]
    assert [c.sid for c in svc.channels.list(limit=3)] == want[:3]

    first = svc.channels.page(page_size=3)
    assert [c.sid for c in first] == want[:3]
    second = first.next_page()
    assert [c.sid for c in second] == want[3:6]
    third = second.next_page()
    assert [c.sid for c in third] == want[6:]
    assert third.next_page() is None


# ---------------------------------------------------------------------------------------------
# Members (§8)


def test_member_add_creates_the_user(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    assert svc.users.list() == []
    m = svc.channels(ch.sid).members.create(identity="alice@example.com")
    assert _status(client) == 201
    assert m.sid.startswith("MB") and len(m.sid) == 34
    assert m.account_sid == ACCOUNT_SID
    assert m.service_sid == service.sid
    assert m.channel_sid == ch.sid
    assert m.identity == "alice@example.com"
    assert m.role_sid == service.default_channel_role_sid
    assert m.last_consumed_message_index is None
    assert m.last_consumption_timestamp is None
    assert m.attributes == "{}"
    assert _is_utc_datetime(m.date_created) and _is_utc_datetime(m.date_updated)
    assert m.url == f"{PARLEY_URL}/v2/Services/{service.sid}/Channels/{ch.sid}/Members/{m.sid}"
    user = svc.users("alice@example.com").fetch()
    assert user.identity == "alice@example.com"
    assert user.role_sid == service.default_service_role_sid
    assert user.joined_channels_count == 1
    assert svc.channels(ch.sid).fetch().members_count == 1


def test_member_add_existing_user_keeps_it(client, service):
    svc = client.chat.v2.services(service.sid)
    user = svc.users.create(identity="bob", friendly_name="Bob")
    ch = svc.channels.create()
    svc.channels(ch.sid).members.create(identity="bob")
    again = svc.users("bob").fetch()
    assert again.sid == user.sid and again.friendly_name == "Bob"
    assert again.joined_channels_count == 1
    assert len(svc.users.list()) == 1


def test_member_fetch_update_delete(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create(unique_name="room")
    members = svc.channels("room").members
    m = members.create(identity="alice", attributes=json.dumps({"nick": "al"}))
    assert json.loads(m.attributes) == {"nick": "al"}
    assert members(m.sid).fetch().identity == "alice"
    assert members("alice").fetch().sid == m.sid
    assert svc.channels(ch.sid).members("alice").fetch().sid == m.sid

    role = svc.roles.create(friendly_name="mod", type="channel", permission=["sendMessage"])
    for i in range(3):
        svc.channels(ch.sid).messages.create(body=f"m{i}")
    up = members("alice").update(role_sid=role.sid, last_consumed_message_index=1,
                                 attributes=json.dumps({"nick": "ally"}))
    assert up.sid == m.sid
    assert up.role_sid == role.sid
    assert up.last_consumed_message_index == 1
    assert _is_utc_datetime(up.last_consumption_timestamp)  # set along with the index
    assert json.loads(up.attributes) == {"nick": "ally"}
    fetched = members(m.sid).fetch()
    assert fetched.role_sid == role.sid and fetched.last_consumed_message_index == 1

    assert members("alice").delete() is True
    assert _status(client) == 204
    for key in (m.sid, "alice"):
        with raises_rest(404, 20404):
            members(key).fetch()
    assert svc.channels(ch.sid).fetch().members_count == 0
    assert svc.users("alice").fetch().joined_channels_count == 0  # the user stays


def test_member_exists_is_409_50404(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    svc.channels(ch.sid).members.create(identity="alice")
    with raises_rest(409, 50404):
        svc.channels(ch.sid).members.create(identity="alice")
    assert svc.channels(ch.sid).fetch().members_count == 1


def test_member_missing_identity_is_400(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    with raises_rest(400, 20001) as box:
        svc.channels(ch.sid).members.create(identity=values.unset)
    assert "Identity" in box["exc"].msg


def test_member_of_unknown_channel_is_404(client, service):
    svc = client.chat.v2.services(service.sid)
    with raises_rest(404, 20404):
        svc.channels(MISSING_CH).members.create(identity="alice")
    ch = svc.channels.create()
    with raises_rest(404, 20404):
        svc.channels(ch.sid).members(MISSING_MB).fetch()
    with raises_rest(404, 20404):
        svc.channels(ch.sid).members("nobody").fetch()


def test_member_list_paging_and_identity_filter(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    members = svc.channels(ch.sid).members
    made = [members.create(identity=f"user{i}") for i in range(5)]
    http(client).clear()
    listed = members.list(page_size=2)
    assert [m.sid for m in listed] == [m.sid for m in made]
    assert len(_page_gets(client, "/Members")) == 3
    assert [m.identity for m in members.stream(page_size=2, limit=3)] == ["user0", "user1", "user2"]
    filtered = members.list(identity=["user1", "user3"])
    assert sorted(m.identity for m in filtered) == ["user1", "user3"]
    assert members.list(identity=["nobody"]) == []


def test_channel_member_limit_is_403_50403(client, service):
    svc = client.chat.v2.services(service.sid)
    assert svc.update(limits_channel_members=2).limits["channel_members"] == 2
    ch = svc.channels.create()
    svc.channels(ch.sid).members.create(identity="a")
    svc.channels(ch.sid).members.create(identity="b")
    with raises_rest(403, 50403):
        svc.channels(ch.sid).members.create(identity="c")
    assert svc.channels(ch.sid).fetch().members_count == 2
    # the rejected join left nothing behind in the channel
    assert [m.identity for m in svc.channels(ch.sid).members.list()] == ["a", "b"]


def test_user_channel_limit_is_403_50208(client, service):
    svc = client.chat.v2.services(service.sid)
    assert svc.update(limits_user_channels=1).limits["user_channels"] == 1
    one = svc.channels.create()
    two = svc.channels.create()
    svc.channels(one.sid).members.create(identity="alice")
    with raises_rest(403, 50208):
        svc.channels(two.sid).members.create(identity="alice")
    assert svc.users("alice").fetch().joined_channels_count == 1
    assert svc.channels(two.sid).fetch().members_count == 0
    # someone else can still join the second channel
    svc.channels(two.sid).members.create(identity="bob")


# ---------------------------------------------------------------------------------------------
# Messages (§9)


def test_message_create_defaults(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    msg = svc.channels(ch.sid).messages.create(body="hello world")
    assert _status(client) == 201
    assert msg.sid.startswith("IM") and len(msg.sid) == 34
    assert msg.account_sid == ACCOUNT_SID
    assert msg.service_sid == service.sid
    assert msg.channel_sid == ch.sid
    assert msg.to == ch.sid
    assert msg.body == "hello world"
    assert msg._from == "system"
    assert msg.index == 0
    assert msg.type == "text"
    assert msg.media is None
    assert msg.was_edited is False
    assert msg.attributes == "{}"
    assert _is_utc_datetime(msg.date_created) and _is_utc_datetime(msg.date_updated)
    url = f"{PARLEY_URL}/v2/Services/{service.sid}/Channels/{ch.sid}/Messages/{msg.sid}"
    assert msg.url == url
    after = svc.channels(ch.sid).fetch()
    assert after.messages_count == 1
    assert after.links["last_message"] == url


def test_message_fields_fetch_update_delete(client, service):
    svc = client.chat.v2.services(service.sid)
    svc.channels.create(unique_name="room")
    messages = svc.channels("room").messages
    msg = messages.create(body="first", from_="alice", attributes=json.dumps({"k": 1}))
    assert msg._from == "alice"
    assert json.loads(msg.attributes) == {"k": 1}
    second = messages.create(body="second")
    assert second.index > msg.index

    fetched = messages(msg.sid).fetch()
    assert (fetched.sid, fetched.body, fetched._from, fetched.index) == (msg.sid, "first", "alice", 0)
    assert fetched.date_created == msg.date_created

    edited = messages(msg.sid).update(body="first, edited", last_updated_by="alice")
    assert _status(client) == 200
    assert edited.body == "first, edited"
    assert edited.was_edited is True
    assert edited.last_updated_by == "alice"
    assert edited.index == 0 and edited._from == "alice"
    assert edited.date_updated >= edited.date_created
    assert messages(msg.sid).fetch().body == "first, edited"

    assert messages(msg.sid).delete() is True
    assert _status(client) == 204
    with raises_rest(404, 20404):
        messages(msg.sid).fetch()
    with raises_rest(404, 20404):
        messages(msg.sid).delete()
    assert [m.sid for m in messages.list()] == [second.sid]


def test_message_without_body_is_400(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    with raises_rest(400):
        svc.channels(ch.sid).messages.create()
    with raises_rest(400):
        svc.channels(ch.sid).messages.create(body="")
    assert svc.channels(ch.sid).fetch().messages_count == 0


def test_message_with_media_sid_is_400(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    with raises_rest(400) as box:
        svc.channels(ch.sid).messages.create(body="pic", media_sid="ME" + "0" * 32)
    assert "MediaSid" in box["exc"].msg or "edia" in box["exc"].msg
    assert svc.channels(ch.sid).messages.list() == []


def test_message_unknown_is_404(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    with raises_rest(404, 20404):
        svc.channels(ch.sid).messages(MISSING_IM).fetch()
    with raises_rest(404, 20404):
        svc.channels(MISSING_CH).messages.create(body="x")


def test_message_paging_asc_and_desc(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    messages = svc.channels(ch.sid).messages
    made = [messages.create(body=f"message {i}") for i in range(7)]
    assert [m.index for m in made] == list(range(7))

    http(client).clear()
    asc = messages.list(page_size=2)
    assert [m.index for m in asc] == list(range(7))
    assert [m.sid for m in asc] == [m.sid for m in made]
    assert [m.body for m in asc] == [f"message {i}" for i in range(7)]
    assert len(_page_gets(client, "/Messages")) == 4

    assert [m.index for m in messages.list(order="asc", page_size=3)] == list(range(7))

    http(client).clear()
    desc = messages.list(order="desc", page_size=2)
    assert [m.index for m in desc] == list(range(6, -1, -1))
    assert len(_page_gets(client, "/Messages")) == 4
    # the first request carries Order as a parameter, the followed next-page links carry it along
    for _, url, params, _ in http(client).gets():
        assert params.get("Order") == "desc" or "Order=desc" in url, (url, params)

    streamed = list(messages.stream(order="desc", page_size=3))
    assert [m.sid for m in streamed] == [m.sid for m in reversed(made)]
    assert [m.index for m in messages.stream(order="desc", limit=3, page_size=2)] == [6, 5, 4]

    page = messages.page(order="desc", page_size=3)
    assert [m.index for m in page] == [6, 5, 4]
    assert [m.index for m in page.next_page()] == [3, 2, 1]
    assert all(_is_utc_datetime(m.date_created) for m in asc)


def test_message_indexes_after_delete_keep_increasing(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    messages = svc.channels(ch.sid).messages
    made = [messages.create(body=str(i)) for i in range(3)]
    messages(made[2].sid).delete()
    nxt = messages.create(body="after delete")
    assert nxt.index > made[1].index  # monotonic (may skip)
    assert [m.index for m in messages.list()] == [0, 1, nxt.index]


# ---------------------------------------------------------------------------------------------
# Invites (§10)


def test_invite_create_fetch_list_delete(client, service):
    svc = client.chat.v2.services(service.sid)
    svc.users.create(identity="alice")
    svc.users.create(identity="bob")
    ch = svc.channels.create(unique_name="room")
    invites = svc.channels("room").invites
    inv = invites.create(identity="alice")
    assert _status(client) == 201
    assert inv.sid.startswith("IN") and len(inv.sid) == 34
    assert inv.account_sid == ACCOUNT_SID
    assert inv.service_sid == service.sid
    assert inv.channel_sid == ch.sid
    assert inv.identity == "alice"
    assert inv.role_sid == service.default_channel_role_sid
    assert _is_utc_datetime(inv.date_created) and _is_utc_datetime(inv.date_updated)
    assert inv.url == f"{PARLEY_URL}/v2/Services/{service.sid}/Channels/{ch.sid}/Invites/{inv.sid}"

    fetched = invites(inv.sid).fetch()
    assert (fetched.sid, fetched.identity, fetched.date_created) == (inv.sid, "alice", inv.date_created)
    bob = invites.create(identity="bob")
    assert [i.sid for i in invites.list()] == [inv.sid, bob.sid]
    assert [i.sid for i in invites.list(identity=["bob"])] == [bob.sid]
    assert [i.sid for i in invites.list(page_size=1)] == [inv.sid, bob.sid]

    assert invites(inv.sid).delete() is True
    assert _status(client) == 204
    with raises_rest(404, 20404):
        invites(inv.sid).fetch()
    assert [i.sid for i in invites.list()] == [bob.sid]
    # an invite is not a membership
    assert svc.channels(ch.sid).fetch().members_count == 0


def test_invite_with_channel_role(client, service):
    svc = client.chat.v2.services(service.sid)
    svc.users.create(identity="alice")
    ch = svc.channels.create()
    role = svc.roles.create(friendly_name="guest", type="channel", permission=["sendMessage"])
    inv = svc.channels(ch.sid).invites.create(identity="alice", role_sid=role.sid)
    assert inv.role_sid == role.sid


def test_invite_exists_is_409_50212(client, service):
    svc = client.chat.v2.services(service.sid)
    svc.users.create(identity="alice")
    ch = svc.channels.create()
    svc.channels(ch.sid).invites.create(identity="alice")
    with raises_rest(409, 50212):
        svc.channels(ch.sid).invites.create(identity="alice")


def test_invite_of_member_is_409_50404(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    svc.channels(ch.sid).members.create(identity="alice")
    with raises_rest(409, 50404):
        svc.channels(ch.sid).invites.create(identity="alice")


def test_invite_of_unknown_identity_is_404(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    with raises_rest(404, 20404):
        svc.channels(ch.sid).invites.create(identity="nobody")
    with raises_rest(404, 20404):
        svc.channels(ch.sid).invites(MISSING_IN).fetch()
    # inviting does not create the user (unlike adding a member)
    with raises_rest(404, 20404):
        svc.users("nobody").fetch()


def test_joining_consumes_the_invite(client, service):
    svc = client.chat.v2.services(service.sid)
    svc.users.create(identity="alice")
    ch = svc.channels.create()
    svc.channels(ch.sid).invites.create(identity="alice")
    uc = svc.users("alice").user_channels(ch.sid).fetch()
    assert uc.status == "invited" and uc.member_sid is None
    m = svc.channels(ch.sid).members.create(identity="alice")
    assert svc.channels(ch.sid).invites.list() == []
    uc = svc.users("alice").user_channels(ch.sid).fetch()
    assert uc.status == "joined" and uc.member_sid == m.sid


# ---------------------------------------------------------------------------------------------
# User Channels (§6)


def test_user_channels_list_and_fetch(client, service):
    svc = client.chat.v2.services(service.sid)
    one = svc.channels.create(unique_name="one")
    two = svc.channels.create(unique_name="two", type="private")
    m1 = svc.channels(one.sid).members.create(identity="alice")
    m2 = svc.channels(two.sid).members.create(identity="alice")
    user = svc.users("alice").fetch()

    listed = svc.users("alice").user_channels.list()
    assert [uc.channel_sid for uc in listed] == [one.sid, two.sid]
    assert [uc.member_sid for uc in listed] == [m1.sid, m2.sid]
    assert [uc.channel_sid for uc in svc.users(user.sid).user_channels.list()] == [one.sid, two.sid]
    for uc, ch, m in zip(listed, (one, two), (m1, m2)):
        assert uc.account_sid == ACCOUNT_SID
        assert uc.service_sid == service.sid
        assert uc.user_sid == user.sid
        assert uc.status == "joined"
        assert uc.notification_level == "default"
        assert uc.last_consumed_message_index is None
        assert uc.unread_messages_count is None
        chan_url = f"{PARLEY_URL}/v2/Services/{service.sid}/Channels/{ch.sid}"
        assert uc.links["channel"] == chan_url
        assert uc.links["member"] == f"{chan_url}/Members/{m.sid}"
        assert uc.url == f"{PARLEY_URL}/v2/Services/{service.sid}/Users/{user.sid}/Channels/{ch.sid}"

    by_name = svc.users("alice").user_channels("two").fetch()
    by_sid = svc.users(user.sid).user_channels(two.sid).fetch()
    for uc in (by_name, by_sid):
        assert uc.channel_sid == two.sid and uc.member_sid == m2.sid and uc.status == "joined"


def test_user_channels_paging(client, service):
    svc = client.chat.v2.services(service.sid)
    made = [svc.channels.create(friendly_name=f"c{i}") for i in range(5)]
    for ch in made:
        svc.channels(ch.sid).members.create(identity="alice")
    http(client).clear()
    listed = svc.users("alice").user_channels.list(page_size=2)
    assert [uc.channel_sid for uc in listed] == [c.sid for c in made]
    assert len(_page_gets(client, "/Channels")) == 3
    streamed = svc.users("alice").user_channels.stream(page_size=2, limit=3)
    assert [uc.channel_sid for uc in streamed] == [c.sid for c in made[:3]]


def test_user_channel_update_notification_level_and_horizon(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    svc.channels(ch.sid).members.create(identity="alice")
    for i in range(5):
        svc.channels(ch.sid).messages.create(body=f"m{i}", from_="bob")
    ucs = svc.users("alice").user_channels

    muted = ucs(ch.sid).update(notification_level="muted")
    assert _status(client) == 200
    assert muted.notification_level == "muted"
    assert ucs(ch.sid).fetch().notification_level == "muted"

    read = ucs(ch.sid).update(last_consumed_message_index=1)
    assert read.last_consumed_message_index == 1
    assert read.unread_messages_count == 3  # indexes 2, 3, 4
    assert read.notification_level == "muted"  # untouched
    member = svc.channels(ch.sid).members("alice").fetch()
    assert member.last_consumed_message_index == 1
    assert _is_utc_datetime(member.last_consumption_timestamp)

    svc.channels(ch.sid).messages.create(body="m5")
    assert ucs(ch.sid).fetch().unread_messages_count == 4

    done = ucs(ch.sid).update(last_consumed_message_index=5, notification_level="default")
    assert done.unread_messages_count == 0
    assert done.notification_level == "default"
    assert [uc.unread_messages_count for uc in ucs.list()] == [0]


def test_user_channel_bad_notification_level_is_400(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    svc.channels(ch.sid).members.create(identity="alice")
    with raises_rest(400):
        svc.users("alice").user_channels(ch.sid).update(notification_level="loud")


def test_user_channel_delete_leaves_the_channel(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    m = svc.channels(ch.sid).members.create(identity="alice")
    svc.channels(ch.sid).members.create(identity="bob")
    assert svc.users("alice").user_channels(ch.sid).delete() is True
    assert _status(client) == 204
    with raises_rest(404, 20404):
        svc.channels(ch.sid).members(m.sid).fetch()
    with raises_rest(404, 20404):
        svc.users("alice").user_channels(ch.sid).fetch()
    assert svc.users("alice").user_channels.list() == []
    assert svc.users("alice").fetch().joined_channels_count == 0
    after = svc.channels(ch.sid).fetch()
    assert after.members_count == 1
    assert [x.identity for x in svc.channels(ch.sid).members.list()] == ["bob"]


def test_user_channels_of_unknown_user_is_404(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    with raises_list_error():
        svc.users("nobody").user_channels.list()
    with raises_rest(404, 20404):
        svc.users("nobody").user_channels(ch.sid).fetch()
    svc.users.create(identity="loner")
    assert svc.users("loner").user_channels.list() == []
    with raises_rest(404, 20404):
        svc.users("loner").user_channels(ch.sid).fetch()


# ---------------------------------------------------------------------------------------------
# Tenancy: another account cannot see this account's channels


def test_channels_are_private_to_the_account(client, client2, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create(unique_name=unique("room"))
    other = client2.chat.v2.services(service.sid)
    with raises_rest(404, 20404):
        other.channels(ch.sid).fetch()
    with raises_rest(404, 20404):
        other.channels(ch.sid).messages.create(body="intruder")
    assert svc.channels(ch.sid).fetch().messages_count == 0


# ---------------------------------------------------------------------------------------------
# Awkward but legal text: kept as sent (2xx) or a 400, never a 5xx, on every backend

NUL = "nul\x00byte"


def _created_or_400(create, read_back, value):
    try:
        obj = create()
    except TwilioRestException as exc:
        assert exc.status == 400, f"HTTP {exc.status} code {exc.code}: {exc.msg}"
        return
    assert read_back(obj) == value


def test_nul_byte_in_channel_member_and_message_fields(client, service):
    svc = client.chat.v2.services(service.sid)
    _created_or_400(lambda: svc.channels.create(friendly_name=NUL),
                    lambda c: svc.channels(c.sid).fetch().friendly_name, NUL)
    _created_or_400(lambda: svc.channels.create(unique_name=NUL),
                    lambda c: svc.channels(c.sid).fetch().unique_name, NUL)
    ch = svc.channels.create()
    _created_or_400(lambda: svc.channels(ch.sid).members.create(identity=NUL),
                    lambda m: svc.channels(ch.sid).members(m.sid).fetch().identity, NUL)
    messages = svc.channels(ch.sid).messages
    _created_or_400(lambda: messages.create(body=NUL),
                    lambda m: messages(m.sid).fetch().body, NUL)
    _created_or_400(lambda: messages.create(body="x", from_=NUL),
                    lambda m: messages(m.sid).fetch()._from, NUL)


def test_nul_byte_in_channel_and_member_paths(client, service):
    """The library puts a unique name / identity into the path as-is (NUL goes out as %00)."""
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    for call in (lambda: svc.channels(NUL).fetch(),
                 lambda: svc.channels(ch.sid).members(NUL).fetch(),
                 lambda: svc.users(NUL).user_channels(ch.sid).fetch()):
        try:
            call()
        except TwilioRestException as exc:
            assert exc.status in (400, 404), f"HTTP {exc.status} code {exc.code}: {exc.msg}"


# ---------------------------------------------------------------------------------------------
# Concurrent library clients: limits, conflicts and message indexes hold


def _in_parallel(n, call):
    """Run call(client, i) for i in range(n) on n threads, each with its own official client;
    each result is the call's value or (status, code) of its TwilioRestException."""
    results = [None] * n

    def run(i):
        try:
            results[i] = call(make_client(ACCOUNT_SID, AUTH_TOKEN), i)
        except TwilioRestException as exc:
            results[i] = (exc.status, exc.code)
        except Exception as exc:  # noqa: BLE001 - reported through the result
            results[i] = repr(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_concurrent_joins_respect_the_member_limit(client, service):
    svc = client.chat.v2.services(service.sid)
    svc.update(limits_channel_members=3)
    ch = svc.channels.create()
    results = _in_parallel(8, lambda c, i: c.chat.v2.services(service.sid).channels(ch.sid)
                           .members.create(identity=f"p{i}").identity)
    joined = [r for r in results if isinstance(r, str)]
    assert len(joined) == 3, results
    assert sorted(r for r in results if not isinstance(r, str)) == [(403, 50403)] * 5, results
    assert svc.channels(ch.sid).fetch().members_count == 3
    assert sorted(m.identity for m in svc.channels(ch.sid).members.list()) == sorted(joined)


def test_concurrent_joins_respect_the_user_channel_limit(client, service):
    svc = client.chat.v2.services(service.sid)
    svc.update(limits_user_channels=2)
    svc.users.create(identity="busy")
    channels = [svc.channels.create().sid for _ in range(6)]
    results = _in_parallel(6, lambda c, i: c.chat.v2.services(service.sid).channels(channels[i])
                           .members.create(identity="busy").identity)
    assert results.count("busy") == 2, results
    assert results.count((403, 50208)) == 4, results
    assert svc.users("busy").fetch().joined_channels_count == 2
    assert len(svc.users("busy").user_channels.list()) == 2


def test_concurrent_joins_of_one_new_identity_make_one_user(client, service):
    svc = client.chat.v2.services(service.sid)
    channels = [svc.channels.create().sid for _ in range(6)]
    results = _in_parallel(6, lambda c, i: c.chat.v2.services(service.sid).channels(channels[i])
                           .members.create(identity="newcomer").identity)
    assert results == ["newcomer"] * 6
    assert [u.identity for u in svc.users.list()] == ["newcomer"]
    assert svc.users("newcomer").fetch().joined_channels_count == 6
    assert len(svc.users("newcomer").user_channels.list()) == 6


def test_concurrent_same_member_and_unique_name_conflicts(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    results = _in_parallel(6, lambda c, i: c.chat.v2.services(service.sid).channels(ch.sid)
                           .members.create(identity="same").sid)
    assert sorted(map(str, results))[:5] == [str((409, 50404))] * 5, results
    assert svc.channels(ch.sid).fetch().members_count == 1
    results = _in_parallel(6, lambda c, i: c.chat.v2.services(service.sid).channels
                           .create(unique_name="race").sid)
    assert sum(isinstance(r, str) for r in results) == 1, results
    assert results.count((409, 50307)) == 5, results


def test_concurrent_messages_get_distinct_indexes(client, service):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create()
    results = _in_parallel(10, lambda c, i: c.chat.v2.services(service.sid).channels(ch.sid)
                           .messages.create(body=f"m{i}").index)
    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 10, results
    listed = svc.channels(ch.sid).messages.list(page_size=3)
    assert [m.index for m in listed] == sorted(results)
    assert svc.channels(ch.sid).fetch().messages_count == 10


def test_x_twilio_webhook_enabled_header_is_accepted(client, service):
    """The library sends X-Twilio-Webhook-Enabled on channel/member/message writes and on
    user-channel delete when asked to; Parley accepts it everywhere it is declared."""
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create(friendly_name="hooks", x_twilio_webhook_enabled="true")
    svc.channels(ch.sid).update(friendly_name="hooks2", x_twilio_webhook_enabled="false")
    m = svc.channels(ch.sid).members.create(identity="alice", x_twilio_webhook_enabled="true")
    svc.channels(ch.sid).members(m.sid).update(attributes="{}", x_twilio_webhook_enabled="true")
    msg = svc.channels(ch.sid).messages.create(body="x", x_twilio_webhook_enabled="true")
    assert svc.channels(ch.sid).messages(msg.sid).update(
        body="y", x_twilio_webhook_enabled="true").body == "y"
    assert svc.channels(ch.sid).messages(msg.sid).delete(x_twilio_webhook_enabled="true") is True
    assert svc.users("alice").user_channels(ch.sid).delete(x_twilio_webhook_enabled="false") is True
    svc.channels(ch.sid).members.create(identity="bob")
    assert svc.channels(ch.sid).members("bob").delete(x_twilio_webhook_enabled="true") is True
    assert svc.channels(ch.sid).delete(x_twilio_webhook_enabled="true") is True
    sent = [r for r in http(client).sent if r[0] in ("POST", "DELETE")]
    assert sent and all(r[3].status_code in (200, 201, 204) for r in sent)
