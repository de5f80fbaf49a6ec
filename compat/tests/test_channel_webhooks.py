"""Channel Webhooks (contract §12, webhooks.md §6) through the official twilio-python library:
every operation (create, fetch, update, list, delete) as an application calls it, the
configuration shapes of the three types, the Chat error codes, the limit of 5 and tenancy.

Parley stores channel webhooks; calling them is another component's job and not checked here.
"""

from twilio.base.exceptions import TwilioRestException

from conftest import ACCOUNT_SID, PARLEY_URL, http, raises_list_error, raises_rest, unique

FLOW = "FW" + "0123456789abcdef" * 2


def _status(client) -> int:
    return http(client).sent[-1][3].status_code


def _channel(client, service):
    ch = client.chat.v2.services(service.sid).channels.create(unique_name=unique("hooks"))
    return ch, client.chat.v2.services(service.sid).channels(ch.sid)


def test_webhook_crud_through_the_library(client, service):
    ch, chan = _channel(client, service)

    # create (the spec's own example values, with a real URL)
    w = chan.webhooks.create(
        type="webhook",
        configuration_url="https://example.com/hook",
        configuration_method="GET",
        configuration_filters=["onMessageSent", "onChannelDestroyed"],
        configuration_retry_count=2,
    )
    assert _status(client) == 201
    assert w.sid.startswith("WH") and len(w.sid) == 34
    assert (w.account_sid, w.service_sid, w.channel_sid) == (ACCOUNT_SID, service.sid, ch.sid)
    assert w.type == "webhook"
    assert w.configuration == {
        "url": "https://example.com/hook",
        "method": "GET",
        "filters": ["onMessageSent", "onChannelDestroyed"],
        "retry_count": 2,
    }
    assert w.url == f"{PARLEY_URL}/v2/Services/{service.sid}/Channels/{ch.sid}/Webhooks/{w.sid}"
    assert w.date_created is not None and w.date_created == w.date_updated

    # fetch, by channel SID and by unique name
    for key in (ch.sid, ch.unique_name):
        f = client.chat.v2.services(service.sid).channels(key).webhooks(w.sid).fetch()
        assert (f.sid, f.type, f.configuration) == (w.sid, "webhook", w.configuration)

    # update: only the given fields change
    u = chan.webhooks(w.sid).update(configuration_url="https://example.com/other",
                                    configuration_method="POST")
    assert _status(client) == 200
    assert u.type == "webhook"
    assert u.configuration == {
        "url": "https://example.com/other",
        "method": "POST",
        "filters": ["onMessageSent", "onChannelDestroyed"],
        "retry_count": 2,
    }
    assert u.date_updated >= w.date_updated

    # the other two types
    studio = chan.webhooks.create(type="studio", configuration_flow_sid=FLOW)
    assert studio.configuration == {"flow_sid": FLOW}
    trigger = chan.webhooks.create(type="trigger", configuration_url="https://example.com/t",
                                   configuration_triggers=["help", "agent"])
    assert trigger.configuration == {"url": "https://example.com/t", "triggers": ["help", "agent"]}

    # list: oldest first; the library pages through with page_size 2
    listed = chan.webhooks.list()
    assert [x.sid for x in listed] == [w.sid, studio.sid, trigger.sid]
    http(client).clear()
    paged = list(chan.webhooks.stream(page_size=2))
    assert [x.sid for x in paged] == [w.sid, studio.sid, trigger.sid]
    assert len(http(client).gets()) == 2, "3 webhooks at page_size 2: two pages"
    page = chan.webhooks.page(page_size=50)
    assert page._payload["meta"]["page_size"] == 5, "PageSize clamped to 5"
    assert page._payload["meta"]["key"] == "webhooks"

    # delete
    assert chan.webhooks(w.sid).delete() is True
    with raises_rest(404, 20404):
        chan.webhooks(w.sid).fetch()
    with raises_rest(404, 20404):
        chan.webhooks(w.sid).delete()
    assert [x.sid for x in chan.webhooks.list()] == [studio.sid, trigger.sid]


def test_invalid_configurations_get_chat_error_codes(client, service):
    _, chan = _channel(client, service)
    url = "https://example.com/h"
    cases = [
        (dict(type="email", configuration_url=url, configuration_filters=["onMessageSent"]), 50324),
        (dict(type="webhook", configuration_filters=["onMessageSent"]), 50329),
        (dict(type="webhook", configuration_url=url), 50330),
        (dict(type="webhook", configuration_url=url, configuration_filters=["onMessageSend"]), 50325),
        (dict(type="trigger", configuration_url=url), 50331),
        (dict(type="trigger", configuration_url=url,
              configuration_triggers=["a", "b", "c", "d", "e", "f"]), 50322),
        (dict(type="studio"), 50327),
        (dict(type="studio", configuration_flow_sid="FW123"), 50327),
        (dict(type="webhook", configuration_url="https://example.com/" + "a" * 2048,
              configuration_filters=["onMessageSent"]), 50332),
        (dict(type="webhook", configuration_url=url, configuration_filters=["onMessageSent"],
              configuration_retry_count=4), 50065),
    ]
    for kwargs, code in cases:
        with raises_rest(400, code):
            chan.webhooks.create(**kwargs)
    assert chan.webhooks.list() == []


def test_a_channel_holds_at_most_five_webhooks(client, service):
    _, chan = _channel(client, service)
    made = [chan.webhooks.create(type="webhook", configuration_url=f"https://example.com/{i}",
                                 configuration_filters=["onMessageSent"]) for i in range(5)]
    with raises_rest(403, 50321):
        chan.webhooks.create(type="studio", configuration_flow_sid=FLOW)
    assert [w.sid for w in chan.webhooks.list()] == [w.sid for w in made]
    chan.webhooks(made[0].sid).delete()
    chan.webhooks.create(type="studio", configuration_flow_sid=FLOW)
    assert len(chan.webhooks.list()) == 5


def test_another_accounts_webhooks_are_404(client, client2, service):
    ch, chan = _channel(client, service)
    w = chan.webhooks.create(type="studio", configuration_flow_sid=FLOW)
    theirs = client2.chat.v2.services(service.sid).channels(ch.sid)
    with raises_rest(404, 20404):
        theirs.webhooks(w.sid).fetch()
    with raises_rest(404, 20404):
        theirs.webhooks(w.sid).update(configuration_retry_count=1)
    with raises_rest(404, 20404):
        theirs.webhooks(w.sid).delete()
    with raises_rest(404, 20404):
        theirs.webhooks.create(type="studio", configuration_flow_sid=FLOW)
    with raises_list_error():
        theirs.webhooks.list()
    assert chan.webhooks(w.sid).fetch().configuration == {"flow_sid": FLOW}


def test_deleting_the_channel_removes_its_webhooks(client, service):
    ch, chan = _channel(client, service)
    w = chan.webhooks.create(type="studio", configuration_flow_sid=FLOW)
    chan.delete()
    try:
        chan.webhooks(w.sid).fetch()
        raise AssertionError("the webhook outlived its channel")
    except TwilioRestException as e:
        assert (e.status, e.code) == (404, 20404)
