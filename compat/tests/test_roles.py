"""Roles (contract §11; defaults and permission names from service-defaults.md §1–§2)."""

from datetime import datetime

from twilio.base.exceptions import TwilioRestException

from conftest import ACCOUNT_SID, PARLEY_URL, http, raises_rest


def test_new_service_has_four_default_roles(client, service):
    roles = client.chat.v2.services(service.sid).roles.list()
    by_name = {r.friendly_name: r for r in roles}
    assert sorted(by_name) == ["channel admin", "channel user", "service admin", "service user"]
    assert len(roles) == 4
    assert by_name["service admin"].type == "deployment"
    assert by_name["service user"].type == "deployment"
    assert by_name["channel admin"].type == "channel"
    assert by_name["channel user"].type == "channel"
    assert sorted(by_name["service user"].permissions) == sorted(
        ["createChannel", "joinChannel", "editOwnUserInfo"])
    assert "sendMessage" in by_name["channel user"].permissions
    assert "deleteAnyMessage" in by_name["channel admin"].permissions
    assert "editAnyUserInfo" in by_name["service admin"].permissions
    for r in roles:
        assert r.account_sid == ACCOUNT_SID
        assert r.service_sid == service.sid
        assert r.url == f"{PARLEY_URL}/v2/Services/{service.sid}/Roles/{r.sid}"
        assert isinstance(r.date_created, datetime)
    assert service.default_service_role_sid == by_name["service user"].sid
    assert service.default_channel_role_sid == by_name["channel user"].sid
    assert service.default_channel_creator_role_sid == by_name["channel admin"].sid


def test_create_fetch_update_delete_channel_role(client, service):
    roles = client.chat.v2.services(service.sid).roles
    role = roles.create(friendly_name="moderator", type="channel",
                        permission=["sendMessage", "leaveChannel", "deleteAnyMessage"])
    assert http(client).sent[-1][3].status_code == 201
    assert role.sid.startswith("RL") and len(role.sid) == 34
    assert role.friendly_name == "moderator"
    assert role.type == "channel"
    assert sorted(role.permissions) == ["deleteAnyMessage", "leaveChannel", "sendMessage"]
    assert role.url == f"{PARLEY_URL}/v2/Services/{service.sid}/Roles/{role.sid}"
    # The multi-valued parameter goes out as repeated Permission keys; the server kept all three.

    fetched = client.chat.v2.services(service.sid).roles(role.sid).fetch()
    assert fetched.sid == role.sid
    assert sorted(fetched.permissions) == sorted(role.permissions)

    updated = client.chat.v2.services(service.sid).roles(role.sid).update(
        permission=["sendMessage"])
    assert updated.permissions == ["sendMessage"]  # replaces the whole set
    assert client.chat.v2.services(service.sid).roles(role.sid).fetch().permissions == ["sendMessage"]

    assert client.chat.v2.services(service.sid).roles(role.sid).delete() is True
    with raises_rest(404, 20404):
        client.chat.v2.services(service.sid).roles(role.sid).fetch()
    assert role.sid not in [r.sid for r in client.chat.v2.services(service.sid).roles.list()]


def test_create_deployment_role(client, service):
    role = client.chat.v2.services(service.sid).roles.create(
        friendly_name="creator", type="deployment", permission=["createChannel"])
    assert role.type == "deployment"
    assert role.permissions == ["createChannel"]


def test_unknown_permission_is_400(client, service):
    with raises_rest(400, (20001, 50104)):
        client.chat.v2.services(service.sid).roles.create(
            friendly_name="bad", type="channel", permission=["sendMessage", "flyToTheMoon"])


def test_permission_of_other_role_type_is_400(client, service):
    # sendMessage is a channel permission; a deployment role cannot hold it.
    with raises_rest(400, (20001, 50104)):
        client.chat.v2.services(service.sid).roles.create(
            friendly_name="bad", type="deployment", permission=["sendMessage"])


def test_unknown_role_type_is_400(client, service):
    with raises_rest(400, (20001, 50105)):
        client.chat.v2.services(service.sid).roles.create(
            friendly_name="bad", type="galaxy", permission=["sendMessage"])
    names = [r.friendly_name for r in client.chat.v2.services(service.sid).roles.list()]
    assert "bad" not in names


def test_update_with_unknown_permission_is_400_and_keeps_role(client, service):
    role = client.chat.v2.services(service.sid).roles.create(
        friendly_name="keeper", type="channel", permission=["sendMessage"])
    with raises_rest(400, (20001, 50104)):
        client.chat.v2.services(service.sid).roles(role.sid).update(permission=["nope"])
    assert client.chat.v2.services(service.sid).roles(role.sid).fetch().permissions == ["sendMessage"]


def test_roles_list_pages(client, service):
    for i in range(2):
        client.chat.v2.services(service.sid).roles.create(
            friendly_name=f"extra {i}", type="channel", permission=["sendMessage"])
    http(client).clear()
    roles = client.chat.v2.services(service.sid).roles.list(page_size=2)
    assert len(roles) == 6
    assert len({r.sid for r in roles}) == 6
    assert len(http(client).gets()) >= 3


def test_fetch_unknown_role_is_404(client, service):
    with raises_rest(404, 20404):
        client.chat.v2.services(service.sid).roles("RL" + "f" * 32).fetch()


def test_default_role_in_use_cannot_be_deleted(client, service):
    svc = client.chat.v2.services(service.sid)
    try:
        svc.roles(service.default_service_role_sid).delete()
        deleted = True
    except TwilioRestException as exc:
        deleted = False
        assert 400 <= exc.status < 500, exc
    assert not deleted, "deleting the service's default role must be refused"
    assert svc.roles(service.default_service_role_sid).fetch().friendly_name == "service user"
