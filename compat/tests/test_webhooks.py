"""Post-event webhooks and Channel Webhooks, driven by the official twilio-python library.

A small HTTP receiver runs in this process (127.0.0.1, a free port). Parley calls it; every call
is checked with the library's own `RequestValidator` and the account's auth token, the way an
app's receiver checks Twilio's calls (webhooks.md §5). REST changes fire post-events only with
`X-Twilio-Webhook-Enabled: true` (webhooks.md §7), then with `Source=API`.
"""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional
from urllib.parse import parse_qsl, urlsplit

import pytest
from twilio.request_validator import RequestValidator

from conftest import AUTH_TOKEN, ACCOUNT_SID, raw, unique

MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
COMMON = {"EventType", "AccountSid", "InstanceSid", "Source", "RetryCount"}
WAIT = 15.0  # seconds a call may take to arrive (the delivery path is durable and polled)


class Call:
    def __init__(self, method: str, url: str, params: Dict[str, str], signature: Optional[str]):
        self.method = method
        self.url = url
        self.params = params
        self.signature = signature

    def __repr__(self) -> str:
        return f"Call({self.method} {self.url} {self.params})"


class Receiver:
    """Records every call; answers with the next queued status (200 when none is queued)."""

    def __init__(self) -> None:
        self.calls: List[Call] = []
        self.statuses: List[int] = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                params = dict(parse_qsl(body, keep_blank_values=True)) if self.command == "POST" \
                    else dict(parse_qsl(parts.query, keep_blank_values=True))
                url = f"http://127.0.0.1:{receiver.port}{self.path}"
                with receiver.cond:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.calls.append(Call(self.command, url, params,
                                               self.headers.get("X-Twilio-Signature")))
                    receiver.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = _handle
            do_POST = _handle

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, n: int, timeout: float = WAIT) -> List[Call]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.calls) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return list(self.calls)

    def events(self, name: str) -> List[Call]:
        with self.cond:
            return [c for c in self.calls if c.params.get("EventType") == name]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def assert_signed(call: Call) -> None:
    validator = RequestValidator(AUTH_TOKEN)
    params = call.params if call.method == "POST" else {}
    assert call.signature, f"no X-Twilio-Signature on {call}"
    assert validator.validate(call.url, params, call.signature), f"signature does not validate: {call}"


def hooked_service(client, service, receiver, filters, method="POST", retries=None):
    kw = dict(post_webhook_url=receiver.url(), webhook_method=method, webhook_filters=filters)
    if retries is not None:
        kw["post_webhook_retry_count"] = retries
    return client.chat.v2.services(service.sid).update(**kw)


def test_message_sent_with_header_calls_the_post_url_once_signed_with_the_documented_params(
        client, service, receiver):
    hooked_service(client, service, receiver, ["onMessageSent"])
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create(friendly_name="hooks")
    msg = svc.channels(ch.sid).messages.create(body="Hello, hooks! ÄÖ", from_="alice",
                                               attributes='{"k":1}',
                                               x_twilio_webhook_enabled="true")
    calls = receiver.wait_for(1)
    assert len(calls) == 1, calls
    call = calls[0]
    assert call.method == "POST"
    assert_signed(call)
    p = call.params
    assert set(p) == COMMON | {"MessageSid", "Index", "ChannelSid", "Body", "Attributes", "From",
                               "DateCreated"}, sorted(p)
    assert p["EventType"] == "onMessageSent"
    assert p["AccountSid"] == ACCOUNT_SID
    assert p["InstanceSid"] == service.sid
    assert p["Source"] == "API"
    assert p["RetryCount"] == "0"
    assert p["MessageSid"] == msg.sid
    assert p["Index"] == str(msg.index)
    assert p["ChannelSid"] == ch.sid
    assert p["Body"] == "Hello, hooks! ÄÖ"
    assert p["Attributes"] == '{"k":1}'
    assert p["From"] == "alice"
    assert MILLIS.match(p["DateCreated"]), p["DateCreated"]
    # No second call arrives.
    time.sleep(1.0)
    assert len(receiver.calls) == 1


def test_rest_changes_without_the_header_call_nothing(client, service, receiver):
    hooked_service(client, service, receiver, ["onMessageSent", "onChannelAdded"])
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create(friendly_name="quiet")
    svc.channels(ch.sid).messages.create(body="no header")
    svc.channels(ch.sid).messages.create(body="false header", x_twilio_webhook_enabled="false")
    # A later change with the header proves the path works; the earlier ones must not show up.
    svc.channels(ch.sid).messages.create(body="with header", x_twilio_webhook_enabled="true")
    calls = receiver.wait_for(1)
    time.sleep(1.0)
    calls = list(receiver.calls)
    assert [c.params["Body"] for c in calls] == ["with header"], calls


def test_filters_choose_the_events(client, service, receiver):
    hooked_service(client, service, receiver, ["onChannelAdded"])
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create(friendly_name="filtered", unique_name=unique("ch"),
                             attributes='{"a":"b"}', x_twilio_webhook_enabled="true")
    svc.channels(ch.sid).messages.create(body="not in filters", x_twilio_webhook_enabled="true")
    calls = receiver.wait_for(1)
    time.sleep(1.0)
    calls = list(receiver.calls)
    assert [c.params["EventType"] for c in calls] == ["onChannelAdded"], calls
    p = calls[0].params
    assert_signed(calls[0])
    assert set(p) == COMMON | {"ChannelSid", "Attributes", "DateCreated", "CreatedBy",
                               "FriendlyName", "UniqueName", "ChannelType"}, sorted(p)
    assert p["ChannelSid"] == ch.sid
    assert p["ChannelType"] == "public"
    assert p["FriendlyName"] == "filtered"
    assert p["UniqueName"] == ch.unique_name
    assert p["Attributes"] == '{"a":"b"}'
    assert MILLIS.match(p["DateCreated"])


def test_get_method_puts_the_params_in_the_query_and_signs_the_url(client, service, receiver):
    hooked_service(client, service, receiver, ["onUserAdded"], method="GET")
    svc = client.chat.v2.services(service.sid)
    user = svc.users.create(identity=unique("u"), friendly_name="Uma",
                            x_twilio_webhook_enabled="true")
    calls = receiver.wait_for(1)
    assert len(calls) == 1, calls
    call = calls[0]
    assert call.method == "GET"
    assert_signed(call)
    p = call.params
    assert p["EventType"] == "onUserAdded"
    assert p["UserSid"] == user.sid
    assert p["Identity"] == user.identity
    assert p["FriendlyName"] == "Uma"
    assert MILLIS.match(p["DateCreated"])


def test_member_added_and_removed(client, service, receiver):
    hooked_service(client, service, receiver, ["onMemberAdded", "onMemberRemoved"])
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create(friendly_name="members")
    m = svc.channels(ch.sid).members.create(identity="bob", x_twilio_webhook_enabled="true")
    # twilio-python 9.13 drops the header on every delete (`_delete` builds the headers, then
    # replaces them with `values.of({})`), so the removal goes out as plain HTTP with the header.
    resp = raw("DELETE", f"/v2/Services/{service.sid}/Channels/{ch.sid}/Members/{m.sid}",
               headers={"X-Twilio-Webhook-Enabled": "true"})
    assert resp.status_code == 204, resp.text
    calls = receiver.wait_for(2)
    assert [c.params["EventType"] for c in calls] == ["onMemberAdded", "onMemberRemoved"], calls
    added, removed = (c.params for c in calls)
    for c in calls:
        assert_signed(c)
    assert added["MemberSid"] == m.sid and added["Identity"] == "bob"
    assert added["ChannelSid"] == ch.sid and added["Reason"] == "ADDED"
    assert removed["MemberSid"] == m.sid and removed["Reason"] == "REMOVED"
    assert MILLIS.match(removed["DateRemoved"])


def test_a_503_is_retried_with_retry_count_incremented(client, service, receiver):
    hooked_service(client, service, receiver, ["onMessageSent"], retries=1)
    receiver.statuses = [503]
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create(friendly_name="retry")
    svc.channels(ch.sid).messages.create(body="again", x_twilio_webhook_enabled="true")
    calls = receiver.wait_for(2, timeout=30)
    assert [c.params["RetryCount"] for c in calls] == ["0", "1"], calls
    time.sleep(1.0)
    assert len(receiver.calls) == 2


def test_messages_of_one_channel_arrive_in_order(client, service, receiver):
    hooked_service(client, service, receiver, ["onMessageSent"])
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create(friendly_name="order")
    bodies = [f"m{i}" for i in range(15)]
    for b in bodies:
        svc.channels(ch.sid).messages.create(body=b, x_twilio_webhook_enabled="true")
    calls = receiver.wait_for(len(bodies), timeout=30)
    assert [c.params["Body"] for c in calls] == bodies


def test_channel_webhook_of_type_webhook_delivers_its_filtered_events(client, service, receiver):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create(friendly_name="scoped")
    hook = svc.channels(ch.sid).webhooks.create(type="webhook",
                                                configuration_url=receiver.url("/scoped"),
                                                configuration_method="POST",
                                                configuration_filters=["onMessageSent"])
    assert hook.sid.startswith("WH")
    svc.channels(ch.sid).messages.create(body="to the channel hook",
                                         x_twilio_webhook_enabled="true")
    calls = receiver.wait_for(1)
    assert len(calls) == 1, calls
    assert calls[0].url.endswith("/scoped")
    assert_signed(calls[0])
    assert calls[0].params["EventType"] == "onMessageSent"
    assert calls[0].params["ChannelSid"] == ch.sid


def test_the_python_library_sends_no_webhook_header_on_delete(client, service, receiver):
    """What an app moving from Twilio gets with twilio-python 9.13: its delete() never sends
    X-Twilio-Webhook-Enabled (a library bug), so no post-event fires for it — here as on Twilio."""
    hooked_service(client, service, receiver, ["onMessageRemoved", "onMessageSent"])
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create(friendly_name="lib-delete")
    msg = svc.channels(ch.sid).messages.create(body="bye", x_twilio_webhook_enabled="true")
    svc.channels(ch.sid).messages(msg.sid).delete(x_twilio_webhook_enabled="true")
    svc.channels(ch.sid).messages.create(body="after", x_twilio_webhook_enabled="true")
    receiver.wait_for(2)
    time.sleep(1.0)
    assert [c.params["EventType"] for c in receiver.calls] == ["onMessageSent", "onMessageSent"]


def test_channel_webhook_of_type_trigger_fires_on_its_word_only(client, service, receiver):
    svc = client.chat.v2.services(service.sid)
    ch = svc.channels.create(friendly_name="triggers")
    svc.channels(ch.sid).webhooks.create(type="trigger",
                                         configuration_url=receiver.url("/trigger"),
                                         configuration_triggers=["help"])
    svc.channels(ch.sid).messages.create(body="nothing to see", x_twilio_webhook_enabled="true")
    svc.channels(ch.sid).messages.create(body="I need HELP now", x_twilio_webhook_enabled="true")
    calls = receiver.wait_for(1)
    time.sleep(1.0)
    calls = list(receiver.calls)
    assert [c.params["Body"] for c in calls] == ["I need HELP now"], calls
    assert_signed(calls[0])
