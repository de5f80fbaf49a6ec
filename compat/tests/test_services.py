"""Services (contract §3; defaults from service-defaults.md §3) through the official library."""

import json
from datetime import datetime, timezone

from conftest import ACCOUNT_SID, PARLEY_URL, http, raises_rest, unique


def _is_sid(value, prefix):
    return isinstance(value, str) and len(value) == 34 and value.startswith(prefix) and \
        all(c in "0123456789abcdefABCDEF" for c in value[2:])


def test_create_returns_service_with_defaults_and_links(client):
    name = unique("svc")
    svc = client.chat.v2.services.create(friendly_name=name)
    try:
        assert _is_sid(svc.sid, "IS")
        assert svc.account_sid == ACCOUNT_SID
        assert svc.friendly_name == name
        # The library parses only YYYY-MM-DDTHH:MM:SSZ into datetime: proves the wire format.
        assert isinstance(svc.date_created, datetime), svc.date_created
        assert abs((datetime.now(timezone.utc) - svc.date_created).total_seconds()) < 300
        assert svc.url == f"{PARLEY_URL}/v2/Services/{svc.sid}"
        base = f"{PARLEY_URL}/v2/Services/{svc.sid}"
        assert svc.links == {
            "channels": f"{base}/Channels",
            "users": f"{base}/Users",
            "roles": f"{base}/Roles",
            "bindings": f"{base}/Bindings",
        }
        assert svc.read_status_enabled is True
        assert svc.reachability_enabled is False
        assert svc.typing_indicator_timeout == 5
        assert svc.limits == {"channel_members": 100, "user_channels": 250}
        assert svc.pre_webhook_url is None and svc.post_webhook_url is None
        assert svc.webhook_filters is None
        assert svc.pre_webhook_retry_count == 0 and svc.post_webhook_retry_count == 0
        assert svc.notifications["new_message"]["enabled"] is False
        assert svc.notifications["added_to_channel"]["enabled"] is False
        assert svc.media["size_limit_mb"] == 150
        for role_sid in (svc.default_service_role_sid, svc.default_channel_role_sid,
                         svc.default_channel_creator_role_sid):
            assert _is_sid(role_sid, "RL")
        # 201 on the wire
        assert http(client).sent[-1][3].status_code == 201
    finally:
        client.chat.v2.services(svc.sid).delete()


def test_fetch_returns_same_service(client, service):
    got = client.chat.v2.services(service.sid).fetch()
    assert got.sid == service.sid
    assert got.friendly_name == service.friendly_name
    assert got.date_created == service.date_created
    assert got.default_service_role_sid == service.default_service_role_sid
    assert got.url == service.url


def test_update_many_settings_roundtrip(client, service):
    updated = client.chat.v2.services(service.sid).update(
        friendly_name="renamed service",
        notifications_new_message_enabled=True,
        notifications_new_message_template="${USER}: ${MESSAGE}",
        notifications_new_message_sound="ding.wav",
        notifications_new_message_badge_count_enabled=True,
        notifications_added_to_channel_enabled=True,
        notifications_added_to_channel_template="added to ${CHANNEL}",
        notifications_log_enabled=True,
        limits_channel_members=500,
        limits_user_channels=42,
        webhook_filters=["onMessageSent", "onChannelDestroyed"],
        pre_webhook_url="https://hooks.example.com/pre",
        post_webhook_url="https://hooks.example.com/post",
        webhook_method="GET",
        pre_webhook_retry_count=2,
        typing_indicator_timeout=9,
        reachability_enabled=True,
        read_status_enabled=False,
        media_compatibility_message="no media here",
    )
    for svc in (updated, client.chat.v2.services(service.sid).fetch()):
        assert svc.friendly_name == "renamed service"
        assert svc.notifications["new_message"]["enabled"] is True
        assert svc.notifications["new_message"]["template"] == "${USER}: ${MESSAGE}"
        assert svc.notifications["new_message"]["sound"] == "ding.wav"
        assert svc.notifications["new_message"]["badge_count_enabled"] is True
        assert svc.notifications["added_to_channel"]["enabled"] is True
        assert svc.notifications["added_to_channel"]["template"] == "added to ${CHANNEL}"
        assert svc.notifications["removed_from_channel"]["enabled"] is False
        assert svc.notifications["log_enabled"] is True
        assert svc.limits == {"channel_members": 500, "user_channels": 42}
        assert sorted(svc.webhook_filters) == ["onChannelDestroyed", "onMessageSent"]
        assert svc.pre_webhook_url == "https://hooks.example.com/pre"
        assert svc.post_webhook_url == "https://hooks.example.com/post"
        assert svc.webhook_method == "GET"
        assert svc.pre_webhook_retry_count == 2
        assert svc.typing_indicator_timeout == 9
        assert svc.reachability_enabled is True
        assert svc.read_status_enabled is False
        assert svc.media["compatibility_message"] == "no media here"
        assert isinstance(svc.date_updated, datetime)
        assert svc.date_updated >= svc.date_created


def test_update_only_friendly_name_keeps_other_settings(client, service):
    client.chat.v2.services(service.sid).update(limits_channel_members=300)
    svc = client.chat.v2.services(service.sid).update(friendly_name="just the name")
    assert svc.friendly_name == "just the name"
    assert svc.limits["channel_members"] == 300
    assert svc.limits["user_channels"] == 250


def test_update_default_service_role_applies_to_new_users(client, service):
    role = client.chat.v2.services(service.sid).roles.create(
        friendly_name="vip", type="deployment", permission=["createChannel", "joinChannel"])
    svc = client.chat.v2.services(service.sid).update(default_service_role_sid=role.sid)
    assert svc.default_service_role_sid == role.sid
    user = client.chat.v2.services(service.sid).users.create(identity="newcomer")
    assert user.role_sid == role.sid


def test_update_limit_above_1000_is_rejected(client, service):
    with raises_rest(400):
        client.chat.v2.services(service.sid).update(limits_channel_members=5000)
    assert client.chat.v2.services(service.sid).fetch().limits["channel_members"] == 100


def test_list_pages_through_all_services(client):
    created = [client.chat.v2.services.create(friendly_name=unique("page")) for _ in range(3)]
    try:
        http(client).clear()
        listed = client.chat.v2.services.list(page_size=1)
        sids = [s.sid for s in listed]
        assert len(sids) == len(set(sids)), "a service appeared twice while paging"
        for svc in created:
            assert svc.sid in sids
        gets = http(client).gets()
        assert len(gets) >= 3, f"expected ≥3 page requests, got {len(gets)}"
        # Every followed page URL is on Parley, never on chat.twilio.com.
        assert all(url.startswith(PARLEY_URL) for _, url, _, _ in gets)
        streamed = [s.sid for s in client.chat.v2.services.stream(page_size=2)]
        assert sorted(streamed) == sorted(sids)
    finally:
        for svc in created:
            client.chat.v2.services(svc.sid).delete()


def test_list_limit_larger_than_max_page_size_is_clamped(client, service):
    # twilio-python sends PageSize=150 for list(limit=150); the max is 100, server must clamp.
    total = len(client.chat.v2.services.list(page_size=100))
    http(client).clear()
    listed = client.chat.v2.services.list(limit=150)
    first_get = http(client).gets()[0]
    assert str(first_get[2].get("PageSize")) == "150"
    first_page = json.loads(first_get[3].text)
    assert first_page["meta"]["page_size"] <= 100
    assert len(first_page["services"]) <= 100
    sids = [s.sid for s in listed]
    assert len(sids) == min(150, total)
    assert len(set(sids)) == len(sids)


def test_list_envelope_meta(client, service):
    client.chat.v2.services.list(page_size=1, limit=1)
    body = http(client).last_json()
    meta = body["meta"]
    assert meta["key"] == "services"
    assert meta["page"] == 0
    assert meta["page_size"] == 1
    assert meta["previous_page_url"] is None
    assert meta["first_page_url"].startswith(f"{PARLEY_URL}/v2/Services?")
    assert meta["url"].startswith(f"{PARLEY_URL}/v2/Services?")
    assert "PageSize=1" in meta["url"]
    assert len(body["services"]) == 1


def test_delete_then_fetch_is_404(client):
    svc = client.chat.v2.services.create(friendly_name=unique("doomed"))
    assert client.chat.v2.services(svc.sid).delete() is True
    assert http(client).sent[-1][3].status_code == 204
    with raises_rest(404, 20404):
        client.chat.v2.services(svc.sid).fetch()
    with raises_rest(404, 20404):
        client.chat.v2.services(svc.sid).delete()
    with raises_rest(404, 20404):
        client.chat.v2.services(svc.sid).update(friendly_name="zombie")
    assert svc.sid not in [s.sid for s in client.chat.v2.services.list()]


def test_delete_service_removes_its_users_and_roles(client):
    svc = client.chat.v2.services.create(friendly_name=unique("cascade"))
    client.chat.v2.services(svc.sid).users.create(identity="left-behind")
    client.chat.v2.services(svc.sid).delete()
    with raises_rest(404, 20404):
        client.chat.v2.services(svc.sid).users("left-behind").fetch()
    with raises_rest(404, 20404):
        client.chat.v2.services(svc.sid).roles(svc.default_service_role_sid).fetch()


def test_fetch_unknown_service_is_404(client):
    with raises_rest(404, 20404) as box:
        client.chat.v2.services("IS" + "0" * 32).fetch()
    assert "not found" in box["exc"].msg.lower()

