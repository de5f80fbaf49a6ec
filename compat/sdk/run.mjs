#!/usr/bin/env node
// Parley against the unmodified twilio-chat 6.0.0 SDK (pinned in package.json), from Node and
// from headless Chromium. The SDK's only change is `twilsock: { uri: <Parley>/v3/wsconnect }`.
//
// Environment: PARLEY_URL, ACCOUNT_SID, AUTH_TOKEN, API_KEY_SID, API_KEY_SECRET (an API key of
// that account, e.g. from `parley api-key create --json`).
// Optional: PARLEY_BIN + SDK_DATABASE_URL (+ PARLEY_SECRET_KEY) for the `parley token`
// scenario; SDK_ONLY=word,word (only the scenarios whose name contains one, plus setup and
// connect), SDK_TIMEOUT_MS (per scenario,
// default 20000), SDK_BROWSER=0 (skip the browser scenario), CHROMIUM (browser binary, default
// /usr/bin/chromium; missing → SKIP, or FAIL when CI=true).
//
// Prints one line per scenario: `PASS name (ms)`, `FAIL name: reason`, `SKIP name: reason`,
// then `sdk: N passed, N failed, N skipped`. Exit status: 0 all passed (skips allowed), 1 a
// scenario failed, 2 bad environment or the runner itself broke.

import { execFile } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { promisify } from "node:util";
import {
  CHAT_VERSION,
  Chat,
  TWILIO_VERSION,
  allPages,
  assert,
  assertEqual,
  connect,
  env,
  eventually,
  expectNoEvent,
  joinedChannel as sharedJoinedChannel,
  liveClients,
  makeToken,
  restClient,
  runScenarios,
  shutdown,
  waitEvent,
  withTimeout,
  wsconnectUrl,
} from "./lib.mjs";
import { browserScenario, examplePageScenario } from "./browser.mjs";

const PARLEY_URL = env("PARLEY_URL").replace(/\/+$/, "");
const ACCOUNT_SID = env("ACCOUNT_SID");
const AUTH_TOKEN = env("AUTH_TOKEN");
const API_KEY_SID = env("API_KEY_SID");
const API_KEY_SECRET = env("API_KEY_SECRET");
const WS_URL = process.env.PARLEY_WS_URL || wsconnectUrl(PARLEY_URL);
const STEP_MS = Number(process.env.SDK_TIMEOUT_MS || 20000);
const EVENT_MS = Math.min(10000, STEP_MS);
const ONLY = (process.env.SDK_ONLY || "").split(",").filter(Boolean);
const RUN = randomBytes(3).toString("hex");
// The whole run may not take longer than this, whatever hangs (exit 2 after it).
const RUN_LIMIT_MS = Number(process.env.SDK_RUN_LIMIT_MS || 10 * 60 * 1000);

const rest = restClient(PARLEY_URL, ACCOUNT_SID, AUTH_TOKEN);
const execFileP = promisify(execFile);

/** Shared state scenarios build on; a scenario that needs a missing piece is skipped. */
const ctx = {
  serviceSid: null,
  alice: null,
  bob: null,
  ids: { alice: `alice-${RUN}`, bob: `bob-${RUN}`, carol: `carol-${RUN}`, web: `web-${RUN}` },
  roomPromise: null, // -> { aliceCh, bobCh, sid }: a public channel both joined
};

function token(identity, ttl = 3600) {
  return makeToken({
    accountSid: ACCOUNT_SID,
    apiKeySid: API_KEY_SID,
    apiKeySecret: API_KEY_SECRET,
    serviceSid: ctx.serviceSid,
    identity,
    ttl,
  });
}

/** The channel object of `client` for `sid`, joined (status "joined"). */
function joinedChannel(client, sid, who) {
  return sharedJoinedChannel(client, sid, who, EVENT_MS);
}

/** A new public channel created by alice, joined by alice (and bob when `withBob`). */
async function newRoom(tag, withBob = true) {
  const aliceCh = await withTimeout(
    ctx.alice.createChannel({ uniqueName: `${tag}-${RUN}`, friendlyName: `${tag} ${RUN}`, isPrivate: false }),
    EVENT_MS,
    `alice creates channel ${tag}`,
  );
  await joinedChannel(ctx.alice, aliceCh.sid, "alice");
  const bobCh = withBob ? await joinedChannel(ctx.bob, aliceCh.sid, "bob") : null;
  return { sid: aliceCh.sid, aliceCh, bobCh };
}

/** The shared room, created once; if that failed, every user of it fails with the same cause. */
function room() {
  if (!ctx.roomPromise) {
    ctx.roomPromise = newRoom("room").catch((e) => {
      throw new Error(`shared room setup failed: ${e.message}`);
    });
  }
  return ctx.roomPromise;
}

/** A message sent by `from` that `to` sees arrive live (messageAdded). */
async function sendAndSee(fromCh, toCh, body, author, what) {
  const seen = waitEvent(toCh, "messageAdded", (m) => m.body === body, EVENT_MS, what);
  const index = await withTimeout(fromCh.sendMessage(body), EVENT_MS, `${author} sends "${body}"`);
  const m = await seen;
  assertEqual(m.author, author, `${what}: author`);
  assert(typeof m.index === "number", `${what}: message index is a number (got ${m.index})`);
  if (typeof index === "number") assertEqual(m.index, index, `${what}: index sendMessage returned`);
  return m;
}

/**
 * A webhook receiver on 127.0.0.1: records every call ({path, params}) and answers
 * `status(params)`.
 */
function startHookReceiver(status) {
  const calls = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => { body += c; });
    req.on("end", () => {
      const u = new URL(req.url, "http://x");
      const params = Object.fromEntries(new URLSearchParams(req.method === "GET" ? u.search : body));
      calls.push({ path: u.pathname, params });
      res.writeHead(status(params), { "Content-Type": "application/json" });
      res.end("{}");
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        calls,
        close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
      });
    });
  });
}

// -------------------------------------------------------------------------------------------
// Scenarios, in order. `needs` names ctx fields that must be set; otherwise SKIP.

const scenarios = [
  {
    name: "setup: service and push credential over REST",
    core: true,
    async run() {
      const svc = await rest.chat.v2.services.create({ friendlyName: `sdk ${RUN}` });
      ctx.serviceSid = svc.sid;
      // An FCM credential, so push registrations have somewhere to go (delivery is off).
      // Credentials belong to the account: with one already there (a rerun), use it.
      const existing = await rest.chat.v2.credentials.list();
      if (existing.some((c) => c.type === "fcm")) return;
      const { privateKey } = generateKeyPairSync("rsa", {
        modulusLength: 2048,
        privateKeyEncoding: { type: "pkcs8", format: "pem" },
        publicKeyEncoding: { type: "spki", format: "pem" },
      });
      await rest.chat.v2.credentials.create({
        type: "fcm",
        friendlyName: `sdk ${RUN}`,
        secret: JSON.stringify({
          type: "service_account",
          project_id: "sdk-test",
          private_key_id: "k1",
          private_key: privateKey,
          client_email: "push@sdk-test.iam.gserviceaccount.com",
          client_id: "1",
          token_uri: "https://oauth2.googleapis.com/token",
        }),
      });
    },
  },
  {
    name: "two users connect",
    core: true,
    needs: ["serviceSid"],
    async run() {
      const [alice, bob] = await Promise.all([
        connect(token(ctx.ids.alice), WS_URL, STEP_MS, "alice"),
        connect(token(ctx.ids.bob), WS_URL, STEP_MS, "bob"),
      ]);
      ctx.alice = alice;
      ctx.bob = bob;
      assertEqual(alice.user.identity, ctx.ids.alice, "alice's client.user.identity");
      assertEqual(bob.user.identity, ctx.ids.bob, "bob's client.user.identity");
      assertEqual(alice.connectionState, "connected", "alice's connectionState");
      // The SDK's first login creates the user, visible over REST.
      const user = await rest.chat.v2.services(ctx.serviceSid).users(ctx.ids.alice).fetch();
      assertEqual(user.identity, ctx.ids.alice, "REST user created by the SDK login");
    },
  },
  {
    name: "create, find, join and leave a channel",
    needs: ["alice", "bob"],
    async run() {
      const ch = await ctx.alice.createChannel({ uniqueName: `lobby-${RUN}`, friendlyName: "Lobby", isPrivate: false });
      assert(ch.sid && ch.sid.startsWith("CH"), `createChannel gives a CH sid (got ${ch.sid})`);
      assertEqual(ch.uniqueName, `lobby-${RUN}`, "uniqueName");
      assertEqual(ch.friendlyName, "Lobby", "friendlyName");
      assertEqual(ch.type, "public", "type");
      await joinedChannel(ctx.alice, ch.sid, "alice");
      // bob finds it in the public directory, by unique name, and joins.
      const listed = await allPages(await ctx.bob.getPublicChannelDescriptors());
      assert(listed.some((d) => d.sid === ch.sid), `bob's public directory lists ${ch.sid}`);
      const byName = await ctx.bob.getChannelByUniqueName(`lobby-${RUN}`);
      assertEqual(byName.sid, ch.sid, "getChannelByUniqueName");
      const bobCh = await joinedChannel(ctx.bob, ch.sid, "bob");
      assertEqual(bobCh.status, "joined", "bob's channel status after join");
      const subscribed = await allPages(await ctx.bob.getSubscribedChannels());
      assert(subscribed.some((c) => c.sid === ch.sid), "bob's subscribed channels include it");
      const members = await rest.chat.v2.services(ctx.serviceSid).channels(ch.sid).members.list();
      assertEqual(members.map((m) => m.identity).sort(), [ctx.ids.alice, ctx.ids.bob].sort(), "REST members");
      // bob leaves.
      const left = waitEvent(ctx.bob, "channelLeft", (c) => c.sid === ch.sid, EVENT_MS, "bob gets channelLeft");
      await bobCh.leave();
      await left;
      const after = await rest.chat.v2.services(ctx.serviceSid).channels(ch.sid).members.list();
      assertEqual(after.map((m) => m.identity), [ctx.ids.alice], "REST members after bob left");
      ctx.lobby = ch;
    },
  },
  {
    name: "member join and leave events",
    needs: ["alice", "bob", "lobby"],
    async run() {
      const ch = ctx.lobby;
      const joined = waitEvent(ch, "memberJoined", (m) => m.identity === ctx.ids.bob, EVENT_MS, "alice sees memberJoined(bob)");
      const bobCh = await joinedChannel(ctx.bob, ch.sid, "bob");
      await joined;
      const left = waitEvent(ch, "memberLeft", (m) => m.identity === ctx.ids.bob, EVENT_MS, "alice sees memberLeft(bob)");
      await bobCh.leave();
      await left;
      // A member added over REST shows up live too.
      const restJoined = waitEvent(ch, "memberJoined", (m) => m.identity === ctx.ids.carol, EVENT_MS, "alice sees memberJoined(carol) added over REST");
      await rest.chat.v2.services(ctx.serviceSid).users.create({ identity: ctx.ids.carol });
      await rest.chat.v2.services(ctx.serviceSid).channels(ch.sid).members.create({ identity: ctx.ids.carol });
      await restJoined;
    },
  },
  {
    name: "messages live in both directions",
    needs: ["alice", "bob"],
    async run() {
      const r = await room();
      await sendAndSee(r.aliceCh, r.bobCh, `hello bob ${RUN}`, ctx.ids.alice, "bob receives alice's message");
      await sendAndSee(r.bobCh, r.aliceCh, `hello alice ${RUN}`, ctx.ids.bob, "alice receives bob's message");
    },
  },
  {
    name: "a message posted over REST arrives live",
    needs: ["alice", "bob"],
    async run() {
      const r = await room();
      const body = `from the back end ${RUN}`;
      const atAlice = waitEvent(r.aliceCh, "messageAdded", (m) => m.body === body, EVENT_MS, "alice receives the REST message");
      const atBob = waitEvent(r.bobCh, "messageAdded", (m) => m.body === body, EVENT_MS, "bob receives the REST message");
      const created = await rest.chat.v2.services(ctx.serviceSid).channels(r.sid).messages.create({ body, from: "backend-bot" });
      const [a, b] = await Promise.all([atAlice, atBob]);
      assertEqual(a.author, "backend-bot", "author seen by alice");
      assertEqual(b.sid, created.sid, "message sid seen by bob");
      assertEqual(a.index, created.index, "index seen by alice");
    },
  },
  {
    name: "history paging (getMessages with page size, prevPage)",
    needs: ["alice", "bob"],
    async run() {
      const r = await newRoom("history", false);
      for (let i = 1; i <= 7; i += 1) await r.aliceCh.sendMessage(`h${i}`);
      const bobCh = await joinedChannel(ctx.bob, r.sid, "bob");
      const page1 = await bobCh.getMessages(3);
      assertEqual(page1.items.map((m) => m.body), ["h5", "h6", "h7"], "newest page, oldest first");
      assert(page1.hasPrevPage, "newest page hasPrevPage");
      const page2 = await page1.prevPage();
      assertEqual(page2.items.map((m) => m.body), ["h2", "h3", "h4"], "previous page");
      assert(page2.hasPrevPage, "second page hasPrevPage");
      const page3 = await page2.prevPage();
      assertEqual(page3.items.map((m) => m.body), ["h1"], "oldest page");
      assert(!page3.hasPrevPage, "oldest page has no prevPage");
      const indexes = [...page3.items, ...page2.items, ...page1.items].map((m) => m.index);
      for (let i = 1; i < indexes.length; i += 1) {
        assert(indexes[i] > indexes[i - 1], `indexes increase across pages: ${JSON.stringify(indexes)}`);
      }
      const fromAnchor = await bobCh.getMessages(2, indexes[2], "forward");
      assertEqual(fromAnchor.items.map((m) => m.body), ["h3", "h4"], "getMessages(2, anchor, 'forward')");
      assertEqual(await bobCh.getMessagesCount(), 7, "getMessagesCount");
    },
  },
  {
    name: "message edit and delete events",
    needs: ["alice", "bob"],
    async run() {
      const r = await room();
      const sent = waitEvent(r.aliceCh, "messageAdded", (m) => m.body === `to edit ${RUN}`, EVENT_MS, "alice sees her own message");
      await sendAndSee(r.aliceCh, r.bobCh, `to edit ${RUN}`, ctx.ids.alice, "bob receives the message to edit");
      const mine = await sent;
      const updated = waitEvent(r.bobCh, "messageUpdated", (a) => a.message.sid === mine.sid, EVENT_MS, "bob sees messageUpdated");
      await mine.updateBody(`edited ${RUN}`);
      const u = await updated;
      assertEqual(u.message.body, `edited ${RUN}`, "edited body seen by bob");
      assert(u.updateReasons.includes("body"), `updateReasons include "body" (got ${JSON.stringify(u.updateReasons)})`);
      const removed = waitEvent(r.bobCh, "messageRemoved", (m) => m.sid === mine.sid, EVENT_MS, "bob sees messageRemoved");
      await mine.remove();
      await removed;
      const left = await rest.chat.v2.services(ctx.serviceSid).channels(r.sid).messages.list();
      assert(!left.some((m) => m.sid === mine.sid), "the message is gone over REST");
    },
  },
  {
    name: "typing indicator reaches the other member",
    needs: ["alice", "bob"],
    async run() {
      const r = await room();
      const started = waitEvent(r.aliceCh, "typingStarted", (m) => m.identity === ctx.ids.bob, EVENT_MS, "alice sees typingStarted(bob)");
      await r.bobCh.typing();
      await started;
    },
  },
  {
    name: "unread counts after reading",
    needs: ["alice", "bob"],
    async run() {
      const r = await newRoom("unread");
      const bodies = ["u1", "u2", "u3", "u4"];
      let last;
      for (const b of bodies) last = await sendAndSee(r.aliceCh, r.bobCh, b, ctx.ids.alice, `bob receives ${b}`);
      const first = await r.bobCh.getMessages(4);
      const idx = first.items.map((m) => m.index);
      assertEqual(await r.bobCh.updateLastConsumedMessageIndex(idx[1]), 2, "updateLastConsumedMessageIndex(second) → unread");
      const count = await eventually(async () => {
        const c = await r.bobCh.getUnconsumedMessagesCount();
        return c === 2 ? c : null;
      }, EVENT_MS, "getUnconsumedMessagesCount() is 2");
      assertEqual(count, 2, "unread after reading two");
      // alice sees bob's read horizon move (roster).
      const horizon = waitEvent(
        r.aliceCh,
        "memberUpdated",
        (a) => a.member.identity === ctx.ids.bob && a.member.lastConsumedMessageIndex === last.index,
        EVENT_MS,
        "alice sees bob's lastConsumedMessageIndex reach the last message",
      );
      assertEqual(await r.bobCh.setAllMessagesConsumed(), 0, "setAllMessagesConsumed → unread");
      await horizon;
      await eventually(async () => (await r.bobCh.getUnconsumedMessagesCount()) === 0, EVENT_MS, "unread count 0 after reading all");
      const members = await rest.chat.v2.services(ctx.serviceSid).channels(r.sid).members.list();
      const bobMember = members.find((m) => m.identity === ctx.ids.bob);
      assertEqual(bobMember && bobMember.lastConsumedMessageIndex, last.index, "REST member last_consumed_message_index");
    },
  },
  {
    name: "push registration creates a user binding",
    needs: ["bob"],
    async run() {
      const address = `fcm-device-${RUN}`;
      await withTimeout(ctx.bob.setPushRegistrationId("fcm", address), STEP_MS, "setPushRegistrationId('fcm', …)");
      // The registration id itself is not part of the REST Binding resource (Twilio's has no
      // address field); bob had no binding before, so one fcm binding is this registration.
      const binding = await eventually(async () => {
        const list = await rest.chat.v2.services(ctx.serviceSid).users(ctx.ids.bob).userBindings.list();
        return list.find((b) => b.bindingType === "fcm");
      }, EVENT_MS, "an fcm User Binding for bob appears over REST");
      assert(Array.isArray(binding.messageTypes) && binding.messageTypes.includes("new_message"), `message_types (got ${JSON.stringify(binding.messageTypes)})`);
      assertEqual(binding.identity, ctx.ids.bob, "binding identity");
    },
  },
  {
    name: "a private channel is invisible to a non-member",
    needs: ["alice", "bob"],
    async run() {
      const secret = await ctx.alice.createChannel({ uniqueName: `secret-${RUN}`, friendlyName: "Secret", isPrivate: true });
      assertEqual(secret.type, "private", "type");
      await joinedChannel(ctx.alice, secret.sid, "alice");
      const listed = await allPages(await ctx.bob.getPublicChannelDescriptors());
      assert(!listed.some((d) => d.sid === secret.sid), "bob's public directory does not list the private channel");
      const mine = await allPages(await ctx.bob.getUserChannelDescriptors());
      assert(!mine.some((d) => d.sid === secret.sid), "bob's own channels do not include it");
      let got = null;
      try {
        got = await withTimeout(ctx.bob.getChannelBySid(secret.sid), EVENT_MS, "bob getChannelBySid(private)");
      } catch (e) {
        assert(!/timed out/.test(e.message), e.message);
      }
      assert(got === null, "bob cannot open the private channel by SID");
      got = null;
      try {
        got = await withTimeout(ctx.bob.getChannelByUniqueName(`secret-${RUN}`), EVENT_MS, "bob getChannelByUniqueName(private)");
      } catch (e) {
        assert(!/timed out/.test(e.message), e.message);
      }
      assert(got === null, "bob cannot open the private channel by unique name");
      const fetched = await rest.chat.v2.services(ctx.serviceSid).channels(secret.sid).fetch();
      assertEqual(fetched.type, "private", "the channel exists over REST");
    },
  },
  {
    name: "permission refusal: deleting another user's message",
    needs: ["alice", "bob"],
    async run() {
      const r = await room();
      const theirs = await sendAndSee(r.aliceCh, r.bobCh, `not yours ${RUN}`, ctx.ids.alice, "bob receives alice's message");
      const noRemoval = expectNoEvent(r.aliceCh, "messageRemoved", (m) => m.sid === theirs.sid, 1500, "alice's message was removed");
      let refused = null;
      try {
        await withTimeout(theirs.remove(), EVENT_MS, "bob's remove() of alice's message");
      } catch (e) {
        refused = e;
      }
      assert(refused && !/timed out/.test(refused.message), `bob's remove() is refused (got ${refused ? refused.message : "success"})`);
      await noRemoval;
      const still = await rest.chat.v2.services(ctx.serviceSid).channels(r.sid).messages(theirs.sid).fetch();
      assertEqual(still.body, `not yours ${RUN}`, "the message is still there over REST");
    },
  },
  {
    name: "webhooks: a pre-event refusal fails the client action; post-events say Source=SDK",
    needs: ["alice", "bob"],
    async run() {
      const r = await room();
      const hooks = await startHookReceiver((p) => (p.EventType === "onMessageSend" && /forbidden/.test(p.Body || "") ? 403 : 200));
      const svc = rest.chat.v2.services(ctx.serviceSid);
      try {
        await svc.update({
          preWebhookUrl: `${hooks.url}/pre`,
          postWebhookUrl: `${hooks.url}/post`,
          webhookMethod: "POST",
          webhookFilters: ["onMessageSend", "onMessageSent"],
        });
        let refused = null;
        try {
          await withTimeout(r.aliceCh.sendMessage(`forbidden ${RUN}`), EVENT_MS, "alice sends a message the pre-event refuses");
        } catch (e) {
          refused = e;
        }
        assert(refused && !/timed out/.test(refused.message), `the refused send fails (got ${refused ? refused.message : "success"})`);
        const pre = hooks.calls.find((c) => c.path === "/pre" && c.params.Body === `forbidden ${RUN}`);
        assert(pre, `the pre-event webhook was called (calls: ${JSON.stringify(hooks.calls.map((c) => c.path))})`);
        assertEqual(pre.params.Source, "SDK", "pre-event Source");
        assertEqual(pre.params.ClientIdentity, ctx.ids.alice, "pre-event ClientIdentity");
        const stored = await svc.channels(r.sid).messages.list();
        assert(!stored.some((m) => m.body === `forbidden ${RUN}`), "the refused message is not stored");
        await sendAndSee(r.aliceCh, r.bobCh, `allowed ${RUN}`, ctx.ids.alice, "bob receives the allowed message");
        const post = await eventually(
          () => hooks.calls.find((c) => c.path === "/post" && c.params.EventType === "onMessageSent" && c.params.Body === `allowed ${RUN}`),
          EVENT_MS,
          "the post-event onMessageSent arrives",
        );
        assertEqual(post.params.Source, "SDK", "post-event Source");
        assertEqual(post.params.ClientIdentity, ctx.ids.alice, "post-event ClientIdentity");
      } finally {
        await svc.update({ preWebhookUrl: "", postWebhookUrl: "", webhookFilters: [] }).catch(() => {});
        await hooks.close();
      }
    },
  },
  {
    name: "reachability: online users, offline after disconnecting",
    needs: ["serviceSid"],
    async run() {
      await rest.chat.v2.services(ctx.serviceSid).update({ reachabilityEnabled: true });
      try {
        // Clients read reachability_enabled from Client/v1/Configuration when they connect.
        const [dave, erin] = await Promise.all([
          connect(token(`dave-${RUN}`), WS_URL, STEP_MS, "dave"),
          connect(token(`erin-${RUN}`), WS_URL, STEP_MS, "erin"),
        ]);
        assert(erin.reachabilityEnabled === true, "client.reachabilityEnabled");
        const seen = await erin.getUser(`dave-${RUN}`);
        await eventually(() => seen.online === true, EVENT_MS, `erin sees dave online (online=${seen.online})`);
        const erinRest = await rest.chat.v2.services(ctx.serviceSid).users(`erin-${RUN}`).fetch();
        assertEqual(erinRest.isOnline, true, "REST is_online of connected erin");
        // Going offline is seen by whoever reads reachability afterwards (Parley computes it
        // when the user info map is read; a live `updated` event for subscribers of that map
        // is not sent yet — see compat/sdk/README.md).
        await shutdown(dave);
        await eventually(async () => {
          const u = await rest.chat.v2.services(ctx.serviceSid).users(`dave-${RUN}`).fetch();
          return u.isOnline === false;
        }, EVENT_MS, "REST is_online of dave becomes false after dave disconnects");
        const frank = await connect(token(`frank-${RUN}`), WS_URL, STEP_MS, "frank");
        const later = await frank.getUser(`dave-${RUN}`);
        await eventually(() => later.online === false, EVENT_MS, `a later reader sees dave offline (online=${later.online})`);
        await shutdown(frank);
        await shutdown(erin);
      } finally {
        await rest.chat.v2.services(ctx.serviceSid).update({ reachabilityEnabled: false }).catch(() => {});
      }
    },
  },
  {
    name: "an expired token is refused",
    needs: ["serviceSid"],
    async run() {
      // What an app listens for: connectionState "denied" and tokenExpired (twilsock reports
      // tokenExpired when the init is refused with errorCode 20104), never "initialized".
      const client = new Chat.Client(token(`late-${RUN}`, -3600), { twilsock: { uri: WS_URL } });
      liveClients.add(client);
      const seen = { tokenExpired: false, denied: false, initialized: false, errors: [] };
      client.on("tokenExpired", () => { seen.tokenExpired = true; });
      client.on("connectionStateChanged", (s) => { if (s === "denied") seen.denied = true; });
      client.on("stateChanged", (s) => { if (s === "initialized") seen.initialized = true; });
      client.on("connectionError", (e) => seen.errors.push(e));
      await eventually(
        () => (seen.tokenExpired && seen.denied) || seen.initialized,
        STEP_MS,
        `connectionState "denied" and tokenExpired`,
      ).catch((e) => {
        throw new Error(`${e.message}; seen ${JSON.stringify(seen)}`);
      });
      assert(!seen.initialized, "a client with an expired token must not initialize");
      await shutdown(client);
    },
  },
  {
    name: "a token printed by `parley token` connects",
    needs: ["serviceSid"],
    async run() {
      // The README's development path: `parley token --service IS… --identity …` (the same
      // database as the server), pasted into an app.
      const bin = process.env.PARLEY_BIN;
      const db = process.env.SDK_DATABASE_URL;
      if (!bin || !db) return { skip: "PARLEY_BIN / SDK_DATABASE_URL not set (compat/sdk/run sets them)" };
      const identity = `cli-${RUN}`;
      const { stdout } = await execFileP(bin, ["token", "--service", ctx.serviceSid, "--identity", identity, "--ttl", "600", "--database-url", db], { timeout: EVENT_MS });
      const client = await connect(stdout.trim(), WS_URL, STEP_MS, identity);
      assertEqual(client.user.identity, identity, "client.user.identity");
      const listed = await allPages(await client.getPublicChannelDescriptors());
      assert(Array.isArray(listed), "the public directory can be read");
      await shutdown(client);
    },
  },
  {
    name: "token update (client.updateToken)",
    needs: ["alice", "bob"],
    async run() {
      const r = await room();
      await withTimeout(ctx.alice.updateToken(token(ctx.ids.alice, 7200)), EVENT_MS, "alice.updateToken(new token)");
      await sendAndSee(r.bobCh, r.aliceCh, `after update ${RUN}`, ctx.ids.bob, "alice still receives after the update");
      await sendAndSee(r.aliceCh, r.bobCh, `updated sender ${RUN}`, ctx.ids.alice, "alice still sends after the update");
      // A token for someone else is refused.
      let refused = false;
      try {
        await withTimeout(ctx.bob.updateToken(token(`mallory-${RUN}`)), EVENT_MS, "bob.updateToken(another identity)");
      } catch (e) {
        refused = !/timed out/.test(e.message);
      }
      // Either way bob's client is done for (a refused update is terminal: state "denied").
      ctx.bob = null;
      assert(refused, "updateToken with another identity's token is refused");
    },
  },
  {
    name: "browser: headless Chromium sends and receives live",
    needs: ["alice"],
    async run() {
      if (process.env.SDK_BROWSER === "0") return { skip: "SDK_BROWSER=0" };
      const r = await newRoom("web", false);
      return browserScenario({
        wsUrl: WS_URL,
        token: token(ctx.ids.web),
        channelSid: r.sid,
        identity: ctx.ids.web,
        peerChannel: r.aliceCh,
        peerIdentity: ctx.ids.alice,
        run: RUN,
        timeoutMs: STEP_MS,
      });
    },
  },
  {
    name: "browser: the example page (examples/browser-chat) logs in, creates, sends, receives",
    needs: ["alice"],
    async run() {
      if (process.env.SDK_BROWSER === "0") return { skip: "SDK_BROWSER=0" };
      return examplePageScenario({
        wsUrl: WS_URL,
        token: token(`page-${RUN}`),
        identity: `page-${RUN}`,
        peer: ctx.alice,
        peerIdentity: ctx.ids.alice,
        run: RUN,
        timeoutMs: STEP_MS,
      });
    },
  },
];

// -------------------------------------------------------------------------------------------

async function main() {
  const hardStop = setTimeout(() => {
    console.log(`FAIL runner: the whole run exceeded ${RUN_LIMIT_MS} ms`);
    process.exit(2);
  }, RUN_LIMIT_MS);
  hardStop.unref();
  // The SDK logs nothing by default; an unhandled rejection inside it must not end the run.
  process.on("unhandledRejection", (e) => {
    if (process.env.SDK_DEBUG) console.error("sdk: unhandled rejection:", e);
  });

  console.log(`sdk: twilio-chat ${CHAT_VERSION}, twilio ${TWILIO_VERSION}, server ${PARLEY_URL}, socket ${WS_URL}, run ${RUN}`);
  const { passed, failed, skipped } = await runScenarios(scenarios, ctx, { only: ONLY, limitMs: STEP_MS * 3 });
  for (const c of [...liveClients]) await shutdown(c);
  console.log(`sdk: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.log(`FAIL runner: ${e && e.stack ? e.stack : e}`);
    process.exit(2);
  },
);
