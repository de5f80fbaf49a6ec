"""Two independent official clients agree: the twilio Node.js library (compat/node/check.mjs)
builds a service, a channel, two members, five messages and channel webhooks on Parley and
prints what it saw; the same objects fetched here through twilio-python must be identical (SIDs,
identities, indexes, bodies, authors, counts, dates, webhook configurations).

`node` missing: the module is skipped with a notice, except under CI=true where that is a
failure. `compat/node/node_modules` missing (or holding another twilio version than
package-lock.json): `npm ci --prefix compat/node` installs the pinned lock file first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from conftest import ACCOUNT_SID, AUTH_TOKEN, PARLEY_URL, make_client

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
CHECK = NODE_DIR / "check.mjs"
MIN_NODE_MAJOR = 20  # twilio-node 6.x: engines node >= 20


def _unavailable(what: str) -> None:
    message = f"{what}: the Node.js cross-check cannot run"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (a failure under CI=true)", pytrace=False)
    pytest.skip(f"{message} (skipped; with CI=true this is a failure)")


def _wire(value) -> str:
    """A datetime the Python library parsed, back in the wire form YYYY-MM-DDTHH:MM:SSZ."""
    assert isinstance(value, datetime), f"expected a datetime from the library, got {value!r}"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _locked_twilio() -> str:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    return lock["packages"]["node_modules/twilio"]["version"]


def _installed_twilio() -> str:
    """Version of the installed twilio package ("" when node_modules is absent)."""
    try:
        return json.loads((NODE_DIR / "node_modules" / "twilio" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return ""


@pytest.fixture(scope="module")
def node_run():
    node = shutil.which("node")
    if node is None:
        _unavailable("`node` is not on PATH")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    match = re.match(r"v(\d+)\.", version)
    assert match and int(match.group(1)) >= MIN_NODE_MAJOR, \
        f"node {version!r} is too old for the pinned twilio package (needs >= {MIN_NODE_MAJOR})"

    if _installed_twilio() != _locked_twilio():
        npm = shutil.which("npm")
        if npm is None:
            _unavailable("`npm` is not on PATH (needed once to install compat/node/node_modules)")
        proc = subprocess.run([npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, \
            f"npm ci --prefix {NODE_DIR} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"

    env = {k: v for k, v in os.environ.items() if k not in ("TWILIO_REGION", "TWILIO_EDGE")}
    env.update(PARLEY_URL=PARLEY_URL, ACCOUNT_SID=ACCOUNT_SID, AUTH_TOKEN=AUTH_TOKEN)
    proc = subprocess.run([node, str(CHECK)], capture_output=True, text=True, timeout=300,
                          env=env, cwd=str(NODE_DIR))
    summary = None
    if proc.stdout.strip():
        try:
            summary = json.loads(proc.stdout)
        except ValueError:
            summary = None
    client = make_client(ACCOUNT_SID, AUTH_TOKEN)
    yield proc, summary, client
    if summary:
        try:
            client.chat.v2.services(summary["service"]["sid"]).delete()
        except Exception:  # noqa: BLE001 - cleanup only
            pass


@pytest.fixture(scope="module")
def node(node_run):
    proc, summary, client = node_run
    assert proc.returncode == 0 and summary is not None, (
        f"node check.mjs exited {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}"
        f"\n--- stderr ---\n{proc.stderr[-4000:]}")
    return summary, client


def test_node_check_passes(node):
    summary, _ = node
    assert summary["failures"] == []
    assert summary["checks"] > 0
    assert summary["library"] == f"twilio-node {_locked_twilio()}"
    assert summary["page_requests"] == {"messages_asc": 3, "messages_desc": 3, "webhooks": 3}


def test_service_and_channel_agree(node):
    summary, client = node
    svc = client.chat.v2.services(summary["service"]["sid"])
    service = svc.fetch()
    assert service.friendly_name == summary["service"]["friendly_name"]
    assert _wire(service.date_created) == summary["service"]["date_created"]

    want = summary["channel"]
    for key in (want["sid"], want["unique_name"]):
        ch = svc.channels(key).fetch()
        assert {
            "sid": ch.sid,
            "unique_name": ch.unique_name,
            "friendly_name": ch.friendly_name,
            "type": ch.type,
            "created_by": ch.created_by,
            "attributes": ch.attributes,
            "members_count": ch.members_count,
            "messages_count": ch.messages_count,
            "date_created": _wire(ch.date_created),
            "date_updated": _wire(ch.date_updated),
        } == want
    assert [c.sid for c in svc.channels.list()] == [want["sid"]]


def test_members_and_users_agree(node):
    summary, client = node
    svc = client.chat.v2.services(summary["service"]["sid"])
    channel_sid = summary["channel"]["sid"]
    listed = svc.channels(channel_sid).members.list(page_size=1)
    assert [
        {"sid": m.sid, "identity": m.identity, "role_sid": m.role_sid, "date_created": _wire(m.date_created)}
        for m in listed
    ] == summary["members"]
    assert [m["identity"] for m in summary["members"]] == ["alice@example.com", "bob"]
    for want in summary["users"]:
        user = svc.users(want["identity"]).fetch()
        assert {
            "sid": user.sid,
            "identity": user.identity,
            "role_sid": user.role_sid,
            "joined_channels_count": user.joined_channels_count,
            "date_created": _wire(user.date_created),
        } == want
        assert svc.users(want["sid"]).fetch().identity == want["identity"]


def test_messages_agree_both_orders(node):
    summary, client = node
    svc = client.chat.v2.services(summary["service"]["sid"])
    messages = svc.channels(summary["channel"]["sid"]).messages
    asc = messages.list(page_size=2)
    assert [
        {
            "sid": m.sid,
            "index": m.index,
            "body": m.body,
            "from": m._from,
            "channel_sid": m.channel_sid,
            "date_created": _wire(m.date_created),
            "date_updated": _wire(m.date_updated),
        }
        for m in asc
    ] == summary["messages"]
    assert [m["index"] for m in summary["messages"]] == [0, 1, 2, 3, 4]
    desc = list(messages.stream(order="desc", page_size=2))
    assert [{"sid": m.sid, "index": m.index} for m in desc] == summary["messages_desc"]
    assert [m["index"] for m in summary["messages_desc"]] == [4, 3, 2, 1, 0]
    for want in summary["messages"]:
        fetched = messages(want["sid"]).fetch()
        assert (fetched.index, fetched.body, fetched._from) == (want["index"], want["body"], want["from"])


def test_user_channels_agree(node):
    summary, client = node
    svc = client.chat.v2.services(summary["service"]["sid"])
    for want in summary["user_channels"]:
        listed = svc.users(want["identity"]).user_channels.list()
        assert [
            {
                "identity": want["identity"],
                "channel_sid": uc.channel_sid,
                "member_sid": uc.member_sid,
                "user_sid": uc.user_sid,
                "status": uc.status,
            }
            for uc in listed
        ] == [want]


def test_channel_webhooks_agree(node):
    summary, client = node
    chan = client.chat.v2.services(summary["service"]["sid"]).channels(summary["channel"]["sid"])
    seen = [{"sid": w.sid, "type": w.type, "configuration": w.configuration,
             "date_created": _wire(w.date_created)} for w in chan.webhooks.list()]
    assert seen == summary["webhooks"]
    assert [w["type"] for w in seen] == ["webhook", "studio", "trigger"]
