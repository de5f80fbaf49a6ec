"""TEST-ONLY push credential material for creating credentials Parley accepts.

Parley validates credentials when they are stored (docs/PUSH.md): an APNs certificate and key
must parse and belong together, an FCM secret must be a service-account JSON with a usable key.
These come from crates/parley-push/tests/fixtures (keys that grant access to nothing).
"""

import json
import os

_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "crates",
                    "parley-push", "tests", "fixtures")


def _read(name: str) -> str:
    with open(os.path.join(_DIR, name), encoding="ascii") as f:
        return f.read()


APNS_CERT = _read("TEST-ONLY-apns-cert.pem")
APNS_KEY = _read("TEST-ONLY-apns-cert-key.pem")
SA_KEY = _read("TEST-ONLY-fcm-sa-key.pem")


def fcm_secret(project_id: str = "demo-project") -> str:
    """A Google service-account JSON (TEST-ONLY key; Google's token endpoint, never contacted)."""
    return json.dumps({
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": "kid-test-only",
        "private_key": SA_KEY,
        "client_email": f"push@{project_id}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    })


FCM_SECRET = fcm_secret()
