#!/usr/bin/env node
// Parley against the official twilio Node.js library (pinned in package.json).
//
// The only change to the library is its Chat base URL: `client.chat` is a Domain
// (node_modules/twilio/lib/base/Domain.js) whose `baseUrl` (default "https://chat.twilio.com")
// is prefixed to every relative URI, so `client.chat.baseUrl = PARLEY_URL` sends every
// Chat v2 call to Parley. Paging follows `meta.next_page_url` verbatim (base/Page.js).
// BaseTwilio.getHostname() only rewrites the host when a region/edge is configured, so
// TWILIO_REGION / TWILIO_EDGE are cleared below.
//
// Scenario: create a service, a channel, two members, post 5 messages; list the messages
// ascending (each, pageSize 2) and descending (list, pageSize 2); fetch both users by
// identity; list one user's channels; create, fetch, update, list (pageSize 2) and delete
// channel webhooks of all three types, and hit the limit of 5. Prints a JSON summary on stdout (compared with the
// Python library by compat/tests/test_node_agrees.py) and exits non-zero on any mismatch.
//
// Environment: PARLEY_URL, ACCOUNT_SID, AUTH_TOKEN.
// Options: --cleanup  delete the service at the end (and check it is gone).
//
// Exit status: 0 all expectations met, 1 a mismatch (listed under "failures" in the
// summary and on stderr), 2 bad environment or an unexpected exception.

import { createRequire } from "node:module";
import twilio from "twilio";

const require = createRequire(import.meta.url);
const LIB_VERSION = require("twilio/package.json").version;

function env(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`check.mjs: environment variable ${name} is required`);
    process.exit(2);
  }
  return v;
}

const PARLEY_URL = env("PARLEY_URL").replace(/\/+$/, "");
const ACCOUNT_SID = env("ACCOUNT_SID");
const AUTH_TOKEN = env("AUTH_TOKEN");
const CLEANUP = process.argv.includes("--cleanup");
delete process.env.TWILIO_REGION;
delete process.env.TWILIO_EDGE;

/** The library's own HTTP client, remembering every request it sends. */
class RecordingClient extends twilio.RequestClient {
  constructor() {
    super({ timeout: 30000 });
    this.sent = [];
  }
  async request(opts) {
    const res = await super.request(opts);
    this.sent.push({ method: String(opts.method).toUpperCase(), uri: opts.uri, params: opts.params || {}, status: res.statusCode });
    return res;
  }
  gets(pathSuffix) {
    return this.sent.filter((r) => r.method === "GET" && new URL(r.uri).pathname.endsWith(pathSuffix));
  }
}

const failures = [];
let checks = 0;
function expect(cond, what, got) {
  checks += 1;
  if (!cond) {
    const line = got === undefined ? what : `${what} (got ${JSON.stringify(got)})`;
    failures.push(line);
    console.error(`check.mjs: MISMATCH: ${line}`);
  }
}
function expectEqual(got, want, what) {
  expect(JSON.stringify(got) === JSON.stringify(want), `${what}: expected ${JSON.stringify(want)}`, got);
}

/** A Date the library parsed, as the wire form YYYY-MM-DDTHH:MM:SSZ. */
function wireDate(d, what) {
  expect(d instanceof Date && !Number.isNaN(d.getTime()), `${what} is parsed into a Date by the library`, d);
  return d instanceof Date ? d.toISOString().replace(/\.\d{3}Z$/, "Z") : d;
}

const isSid = (prefix, s) => typeof s === "string" && new RegExp(`^${prefix}[0-9a-fA-F]{32}$`).test(s);

async function main() {
  const http = new RecordingClient();
  const client = twilio(ACCOUNT_SID, AUTH_TOKEN, { httpClient: http });
  client.chat.baseUrl = PARLEY_URL;
  const v2 = client.chat.v2;

  const tag = Math.random().toString(16).slice(2, 10);
  const service = await v2.services.create({ friendlyName: `node-check-${tag}` });
  expect(isSid("IS", service.sid), "service sid is IS + 32 hex", service.sid);
  const svc = v2.services(service.sid);

  const channel = await svc.channels.create({ friendlyName: "Node check", uniqueName: `node-${tag}` });
  expect(isSid("CH", channel.sid), "channel sid is CH + 32 hex", channel.sid);
  expectEqual(channel.type, "public", "channel default type");
  expectEqual(channel.createdBy, "system", "channel default created_by");
  expectEqual(channel.attributes, "{}", "channel default attributes");
  const chan = svc.channels(channel.sid);

  const identities = ["alice@example.com", "bob"];
  const members = [];
  for (const identity of identities) {
    const m = await chan.members.create({ identity });
    expect(isSid("MB", m.sid), `member ${identity} sid is MB + 32 hex`, m.sid);
    expectEqual(m.identity, identity, "member identity");
    expectEqual(m.channelSid, channel.sid, "member channel_sid");
    members.push(m);
  }

  const posted = [];
  for (let i = 0; i < 5; i += 1) {
    const msg = await chan.messages.create({ body: `message ${i}`, from: identities[i % 2] });
    posted.push(msg);
  }
  expectEqual(posted.map((m) => m.index), [0, 1, 2, 3, 4], "indexes of the posted messages");
  expectEqual(posted.map((m) => m.from), identities.concat(identities, identities).slice(0, 5), "authors of the posted messages");

  // Ascending, through the library's `each` with pageSize 2: 3 pages for 5 messages.
  let before = http.gets("/Messages").length;
  const asc = [];
  await chan.messages.each({ pageSize: 2 }, (m) => {
    asc.push(m);
  });
  const ascPages = http.gets("/Messages").length - before;
  expectEqual(asc.map((m) => m.index), [0, 1, 2, 3, 4], "ascending indexes (each, pageSize 2)");
  expectEqual(asc.map((m) => m.sid), posted.map((m) => m.sid), "ascending SIDs equal the posted ones");
  expectEqual(asc.map((m) => m.body), posted.map((_, i) => `message ${i}`), "ascending bodies");
  expectEqual(ascPages, 3, "page requests for 5 messages at pageSize 2 (asc)");

  // Descending, through `list` with pageSize 2.
  before = http.gets("/Messages").length;
  const desc = await chan.messages.list({ order: "desc", pageSize: 2 });
  const descPages = http.gets("/Messages").length - before;
  expectEqual(desc.map((m) => m.index), [4, 3, 2, 1, 0], "descending indexes (list, order desc, pageSize 2)");
  expectEqual(desc.map((m) => m.sid), posted.map((m) => m.sid).reverse(), "descending SIDs");
  expectEqual(descPages, 3, "page requests for 5 messages at pageSize 2 (desc)");

  // Members listed with paging, users fetched by identity.
  const listedMembers = await chan.members.list({ pageSize: 1 });
  expectEqual(listedMembers.map((m) => m.identity), identities, "members listed (pageSize 1)");
  const users = [];
  for (const identity of identities) {
    const u = await svc.users(identity).fetch();
    expectEqual(u.identity, identity, `user fetched by identity ${identity}`);
    expect(isSid("US", u.sid), `user ${identity} sid is US + 32 hex`, u.sid);
    expectEqual(u.joinedChannelsCount, 1, `joined_channels_count of ${identity}`);
    users.push(u);
  }
  const userChannels = await svc.users(identities[0]).userChannels.list({ pageSize: 1 });
  expectEqual(userChannels.map((uc) => uc.channelSid), [channel.sid], "user channels of alice");
  expectEqual(userChannels.map((uc) => uc.memberSid), [members[0].sid], "member_sid in alice's user channel");
  expectEqual(userChannels.map((uc) => uc.status), ["joined"], "status in alice's user channel");

  const fetchedChannel = await svc.channels(`node-${tag}`).fetch();
  expectEqual(fetchedChannel.sid, channel.sid, "channel fetched by unique name");
  expectEqual(fetchedChannel.membersCount, 2, "members_count");
  expectEqual(fetchedChannel.messagesCount, 5, "messages_count");

  // Channel webhooks (contract §12): create all three types, fetch, update, list with paging,
  // the sixth-webhook error, delete. The surviving ones are compared by the Python side.
  const flow = "FW" + "0123456789abcdef".repeat(2);
  const hook = await chan.webhooks.create({
    type: "webhook",
    "configuration.url": "https://example.com/node-hook",
    "configuration.method": "GET",
    "configuration.filters": ["onMessageSent", "onMemberAdded"],
    "configuration.retryCount": 1,
  });
  expect(isSid("WH", hook.sid), "webhook sid is WH + 32 hex", hook.sid);
  expectEqual(hook.type, "webhook", "webhook type");
  expectEqual(hook.channelSid, channel.sid, "webhook channel_sid");
  expectEqual(hook.configuration, { url: "https://example.com/node-hook", method: "GET", filters: ["onMessageSent", "onMemberAdded"], retry_count: 1 }, "webhook configuration");
  const studio = await chan.webhooks.create({ type: "studio", "configuration.flowSid": flow });
  expectEqual(studio.configuration, { flow_sid: flow }, "studio configuration");
  const trigger = await chan.webhooks.create({ type: "trigger", "configuration.url": "https://example.com/node-trigger", "configuration.triggers": ["help"] });
  expectEqual(trigger.configuration, { url: "https://example.com/node-trigger", triggers: ["help"] }, "trigger configuration");
  const fetchedHook = await chan.webhooks(hook.sid).fetch();
  expectEqual(fetchedHook.configuration, hook.configuration, "webhook fetched");
  const updatedHook = await chan.webhooks(hook.sid).update({ "configuration.url": "https://example.com/node-hook-2", "configuration.retryCount": 3 });
  expectEqual(updatedHook.type, "webhook", "webhook type after update");
  expectEqual(updatedHook.configuration, { url: "https://example.com/node-hook-2", method: "GET", filters: ["onMessageSent", "onMemberAdded"], retry_count: 3 }, "webhook configuration after update");
  for (let i = 0; i < 2; i += 1) {
    await chan.webhooks.create({ type: "studio", "configuration.flowSid": flow });
  }
  try {
    await chan.webhooks.create({ type: "studio", "configuration.flowSid": flow });
    expect(false, "a sixth webhook is refused");
  } catch (err) {
    expect(err instanceof twilio.RestException, "sixth webhook: a RestException", String(err));
    expectEqual([err.status, err.code], [403, 50321], "sixth webhook: status and code");
  }
  before = http.gets("/Webhooks").length;
  const hooksListed = await chan.webhooks.list({ pageSize: 2 });
  const hookPages = http.gets("/Webhooks").length - before;
  expectEqual(hooksListed.length, 5, "webhooks listed (pageSize 2)");
  expectEqual(hookPages, 3, "page requests for 5 webhooks at pageSize 2");
  expectEqual(hooksListed.slice(0, 3).map((w) => w.sid), [hook.sid, studio.sid, trigger.sid], "webhooks listed oldest first");
  for (const extra of hooksListed.slice(3)) {
    expectEqual(await chan.webhooks(extra.sid).remove(), true, "webhook delete resolves true");
  }
  try {
    await chan.webhooks(hooksListed[3].sid).fetch();
    expect(false, "fetch of a deleted webhook rejects");
  } catch (err) {
    expectEqual([err.status, err.code], [404, 20404], "deleted webhook: status and code");
  }

  // Errors surface as RestException with Twilio's status and code.
  try {
    await svc.channels("CH" + "0".repeat(32)).fetch();
    expect(false, "fetch of an unknown channel rejects");
  } catch (err) {
    expect(err instanceof twilio.RestException, "unknown channel: a RestException", String(err));
    expectEqual([err.status, err.code], [404, 20404], "unknown channel: status and code");
  }

  const foreign = http.sent.filter((r) => !r.uri.startsWith(PARLEY_URL + "/"));
  expectEqual(foreign.map((r) => r.uri), [], "every request went to PARLEY_URL");

  const summary = {
    library: `twilio-node ${LIB_VERSION}`,
    parley_url: PARLEY_URL,
    service: { sid: service.sid, friendly_name: service.friendlyName, date_created: wireDate(service.dateCreated, "service.dateCreated") },
    channel: {
      sid: fetchedChannel.sid,
      unique_name: fetchedChannel.uniqueName,
      friendly_name: fetchedChannel.friendlyName,
      type: fetchedChannel.type,
      created_by: fetchedChannel.createdBy,
      attributes: fetchedChannel.attributes,
      members_count: fetchedChannel.membersCount,
      messages_count: fetchedChannel.messagesCount,
      date_created: wireDate(fetchedChannel.dateCreated, "channel.dateCreated"),
      date_updated: wireDate(fetchedChannel.dateUpdated, "channel.dateUpdated"),
    },
    members: listedMembers.map((m) => ({
      sid: m.sid,
      identity: m.identity,
      role_sid: m.roleSid,
      date_created: wireDate(m.dateCreated, "member.dateCreated"),
    })),
    users: users.map((u) => ({
      sid: u.sid,
      identity: u.identity,
      role_sid: u.roleSid,
      joined_channels_count: u.joinedChannelsCount,
      date_created: wireDate(u.dateCreated, "user.dateCreated"),
    })),
    messages: asc.map((m) => ({
      sid: m.sid,
      index: m.index,
      body: m.body,
      from: m.from,
      channel_sid: m.channelSid,
      date_created: wireDate(m.dateCreated, "message.dateCreated"),
      date_updated: wireDate(m.dateUpdated, "message.dateUpdated"),
    })),
    messages_desc: desc.map((m) => ({ sid: m.sid, index: m.index })),
    user_channels: userChannels.map((uc) => ({
      identity: identities[0],
      channel_sid: uc.channelSid,
      member_sid: uc.memberSid,
      user_sid: uc.userSid,
      status: uc.status,
    })),
    webhooks: [updatedHook, studio, trigger].map((w) => ({
      sid: w.sid,
      type: w.type,
      configuration: w.configuration,
      date_created: wireDate(w.dateCreated, "webhook.dateCreated"),
    })),
    page_requests: { messages_asc: ascPages, messages_desc: descPages, webhooks: hookPages },
  };

  if (CLEANUP) {
    const removed = await svc.remove();
    expectEqual(removed, true, "service delete resolves true");
    try {
      await svc.fetch();
      expect(false, "fetch of the deleted service rejects");
    } catch (err) {
      expectEqual([err.status, err.code], [404, 20404], "deleted service: status and code");
    }
    summary.cleaned_up = true;
  }

  summary.checks = checks;
  summary.failures = failures;
  console.log(JSON.stringify(summary, null, 2));
  return failures.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error("check.mjs: unexpected error:", err && err.stack ? err.stack : err);
    if (err && err.status !== undefined) console.error(`  status ${err.status}, code ${err.code}, moreInfo ${err.moreInfo}`);
    if (failures.length) console.error(`check.mjs: mismatches so far: ${JSON.stringify(failures)}`);
    process.exit(2);
  },
);
