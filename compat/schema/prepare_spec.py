"""Derive the OpenAPI document schemathesis checks Parley against from Twilio's twilio_chat_v2.json.

Usage: python prepare_spec.py SOURCE.json DEST.json

The source spec is used as-is except for these adjustments, each one a documented behaviour of
the contract (shared/spec/chat-v2-contract.md) that the raw spec cannot express:

1. PageSize: the per-list `maximum` is dropped. twilio-python turns `list(limit=N)` into
   `PageSize=N`, so Parley clamps oversized page sizes instead of rejecting them (contract §0.3).
   The compat pytest suite checks the clamping itself.
2. PageToken: removed from the query parameters. It is an opaque cursor that only the server
   issues inside `meta.*_page_url`; an arbitrary string is rightly a 400. (The pytest suite
   exercises real tokens by following next/previous page URLs.)
3. Form request bodies whose schema has required properties are marked `required: true`
   (the generator omitted it, so schemathesis would otherwise treat an empty POST as valid).
4. Required string form fields get `minLength: 1` and required arrays `minItems: 1` with
   non-empty items: an empty `Identity=` / `FriendlyName=` / `Permission=` is "missing" (20001).
5. Role `Permission` items are limited to the permission names Parley knows (channel and
   deployment names together, service-defaults.md §2); unknown names are 400 / 50104.
6. Parley's registration extension `POST /v2/Services/{ServiceSid}/Users/{UserSid}/Bindings`
   is declared, so it is exercised and its response is schema-checked (instead of being
   reported as an undeclared method that must answer 405).
7. Channel webhook `Configuration.Filters` items are limited to the event names Parley accepts
   on a channel hook (docs/webhooks.md, "Channel webhooks"); others are 400 / 50325.
"""

import copy
import json
import sys

FORM = "application/x-www-form-urlencoded"

# Post-event names a channel webhook may filter on (parley-core CHANNEL_WEBHOOK_FILTERS).
CHANNEL_WEBHOOK_FILTERS = [
    "onMessageSent", "onMessageUpdated", "onMessageRemoved", "onMediaMessageSent",
    "onChannelUpdated", "onChannelDestroyed", "onMemberAdded", "onMemberUpdated",
    "onMemberRemoved",
]

# Every permission name valid on a channel or a deployment role (service-defaults.md §2).
PERMISSIONS = [
    "createChannel", "joinChannel", "editOwnUserInfo", "editAnyUserInfo", "destroyChannel",
    "inviteMember", "removeMember", "editChannelName", "editChannelAttributes", "addMember",
    "editOwnMessage", "editAnyMessage", "deleteAnyMessage", "editAnyMessageAttributes",
    "editOwnMessageAttributes", "deleteOwnMessage", "editAnyMemberAttributes",
    "editOwnMemberAttributes", "sendMessage", "sendMediaMessage", "leaveChannel",
    "editNotificationLevel",
]


def adjust(spec: dict) -> dict:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "delete", "put", "patch"):
                continue
            params = []
            for p in op.get("parameters", []):
                if p.get("in") == "query" and p.get("name") == "PageToken":
                    continue  # (2)
                if p.get("in") == "query" and p.get("name") == "PageSize":
                    p = copy.deepcopy(p)
                    p["schema"].pop("maximum", None)  # (1)
                params.append(p)
            if "parameters" in op:
                op["parameters"] = params
            body = op.get("requestBody")
            if not body:
                continue
            schema = body.get("content", {}).get(FORM, {}).get("schema", {})
            required = schema.get("required") or []
            if required:
                body["required"] = True  # (3)
            for name in required:  # (4)
                prop = schema.get("properties", {}).get(name, {})
                if prop.get("type") == "string" and "enum" not in prop:
                    prop.setdefault("minLength", 1)
                elif prop.get("type") == "array":
                    prop.setdefault("minItems", 1)
                    items = prop.setdefault("items", {})
                    if items.get("type") == "string" and "enum" not in items:
                        items.setdefault("minLength", 1)
    for path in ("/v2/Services/{ServiceSid}/Roles", "/v2/Services/{ServiceSid}/Roles/{Sid}"):
        body = spec["paths"][path]["post"]["requestBody"]["content"][FORM]["schema"]
        items = body["properties"]["Permission"]["items"]
        items.pop("minLength", None)
        items["enum"] = PERMISSIONS  # (5)
    for path in ("/v2/Services/{ServiceSid}/Channels/{ChannelSid}/Webhooks",
                 "/v2/Services/{ServiceSid}/Channels/{ChannelSid}/Webhooks/{Sid}"):
        body = spec["paths"][path]["post"]["requestBody"]["content"][FORM]["schema"]
        body["properties"]["Configuration.Filters"]["items"]["enum"] = CHANNEL_WEBHOOK_FILTERS  # (7)
    add_registration_extension(spec)
    return spec


def add_registration_extension(spec: dict) -> None:  # (6)
    path = spec["paths"]["/v2/Services/{ServiceSid}/Users/{UserSid}/Bindings"]
    list_op = path["get"]
    path_params = [p for p in list_op["parameters"] if p.get("in") == "path"]
    binding_ref = {"$ref": "#/components/schemas/chat.v2.service.user.user_binding"}
    ok = {"description": "binding", "content": {"application/json": {"schema": binding_ref}}}
    path["post"] = {
        "operationId": "ParleyRegisterUserBinding",
        "summary": "Parley extension: register a push binding for a user (created if new)",
        "tags": ["ParleyExtension"],
        "parameters": copy.deepcopy(path_params),
        "requestBody": {
            "required": True,
            "content": {FORM: {"schema": {
                "type": "object",
                "title": "ParleyRegisterUserBindingRequest",
                "properties": {
                    "BindingType": {"$ref": "#/components/schemas/user_binding_enum_binding_type"},
                    "Address": {"type": "string", "minLength": 1, "maxLength": 4096},
                    "CredentialSid": {"type": "string", "minLength": 34, "maxLength": 34,
                                      "pattern": "^CR[0-9a-fA-F]{32}$"},
                    "Endpoint": {"type": "string", "minLength": 1, "maxLength": 256},
                    "MessageTypes": {"type": "array", "items": {"type": "string", "enum": [
                        "new_message", "added_to_channel", "invited_to_channel",
                        "removed_from_channel"]}},
                },
                "required": ["BindingType", "Address"],
            }}},
        },
        "responses": {"201": ok, "200": ok},
        "security": [{"accountSid_authToken": []}],
    }


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        spec = json.load(f)
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(adjust(spec), f, indent=1)


if __name__ == "__main__":
    main()
