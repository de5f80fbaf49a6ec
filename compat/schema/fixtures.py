"""Create the data schemathesis runs against, print it as shell `export` lines.

Without real identifiers almost every request under /v2/Services/{ServiceSid}/… is a 404 and
the response schemas of users, roles, bindings and credentials are never checked. This makes
one service with a custom role, an FCM credential, a user with one push binding (through
Parley's registration extension), and a channel with that user as a member, one message, one
invite (of a second user) and one (studio) channel webhook, using plain HTTP with the account's Basic auth.
"""

import os
import shlex
import sys

import requests

URL = os.environ["PARLEY_URL"].rstrip("/")
AUTH = (os.environ["ACCOUNT_SID"], os.environ["AUTH_TOKEN"])


def post(path, data, ok=(200, 201)):
    r = requests.post(URL + path, data=data, auth=AUTH, timeout=30)
    if r.status_code not in ok:
        raise SystemExit(f"schema fixtures: POST {path} -> HTTP {r.status_code}: {r.text[:300]}")
    return r.json()


service = post("/v2/Services", {"FriendlyName": "schemathesis fixtures"})
role = post(f"/v2/Services/{service['sid']}/Roles",
            [("FriendlyName", "fixture role"), ("Type", "channel"), ("Permission", "sendMessage")])
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from push_fixtures import FCM_SECRET  # noqa: E402  (TEST-ONLY service account Parley accepts)

cred = post("/v2/Credentials", {"Type": "fcm", "FriendlyName": "fixture fcm", "Secret": FCM_SECRET})
binding = post(f"/v2/Services/{service['sid']}/Users/schema-user/Bindings",
               {"BindingType": "fcm", "Address": "fixture-device-token", "CredentialSid": cred["sid"]})
svc = f"/v2/Services/{service['sid']}"
channel = post(f"{svc}/Channels", {"FriendlyName": "fixture channel"})
chan = f"{svc}/Channels/{channel['sid']}"
member = post(f"{chan}/Members", {"Identity": "schema-user"})
message = post(f"{chan}/Messages", {"Body": "fixture message", "From": "schema-user"})
post(f"{svc}/Users", {"Identity": "schema-invitee"})
invite = post(f"{chan}/Invites", {"Identity": "schema-invitee"})
webhook = post(f"{chan}/Webhooks", {"Type": "studio", "Configuration.FlowSid": "FW" + "0" * 32})
values = {
    "COMPAT_ST_SERVICE_SID": service["sid"],
    "COMPAT_ST_ROLE_SID": role["sid"],
    "COMPAT_ST_CREDENTIAL_SID": cred["sid"],
    "COMPAT_ST_USER_SID": binding["user_sid"],
    "COMPAT_ST_BINDING_SID": binding["sid"],
    "COMPAT_ST_CHANNEL_SID": channel["sid"],
    "COMPAT_ST_MEMBER_SID": member["sid"],
    "COMPAT_ST_MESSAGE_SID": message["sid"],
    "COMPAT_ST_INVITE_SID": invite["sid"],
    "COMPAT_ST_WEBHOOK_SID": webhook["sid"],
}
for k, v in values.items():
    print(f"export {k}={shlex.quote(v)}")
