"""Credentials managed with the admin CLI take effect on the running server.

`parley account rotate-token` and `parley api-key delete` run as separate processes against the
same database; the server caches opened secrets for at most 5 s (parley-http auth.rs), so after
that the old secret must be refused. compat/run provides PARLEY_BIN and COMPAT_DATABASE_URL
(and PARLEY_SECRET_KEY, which the CLI needs to seal secrets).
"""

import json
import os
import subprocess
import time

import pytest

from conftest import make_client, raises_rest, unique

AUTH_CACHE_SECONDS = 5


def cli(*args):
    binary = os.environ.get("PARLEY_BIN")
    db = os.environ.get("COMPAT_DATABASE_URL")
    if not binary or not db:
        pytest.fail("PARLEY_BIN / COMPAT_DATABASE_URL not set (run through compat/run)")
    out = subprocess.run([binary, *args, "--database-url", db], check=True, capture_output=True,
                         text=True, timeout=60)
    return out.stdout


@pytest.mark.parley_policy
def test_rotated_token_and_deleted_key_stop_working():
    account = json.loads(cli("account", "create", "--json", "--friendly-name", unique("rot")))
    key = json.loads(cli("api-key", "create", "--account", account["sid"], "--json"))
    old = make_client(account["sid"], account["auth_token"])
    by_key = make_client(key["sid"], key["secret"], account["sid"])
    svc = old.chat.v2.services.create(friendly_name="rotation")
    assert by_key.chat.v2.services(svc.sid).fetch().sid == svc.sid

    rotated = json.loads(cli("account", "rotate-token", account["sid"], "--json"))
    assert rotated["auth_token"] != account["auth_token"]
    cli("api-key", "delete", key["sid"])
    time.sleep(AUTH_CACHE_SECONDS + 1.5)

    with raises_rest(401, 20003):
        old.chat.v2.services(svc.sid).fetch()
    with raises_rest(401, 20003):
        by_key.chat.v2.services(svc.sid).fetch()
    new = make_client(account["sid"], rotated["auth_token"])
    assert new.chat.v2.services(svc.sid).fetch().friendly_name == "rotation"
