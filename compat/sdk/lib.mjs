// Helpers for the SDK runner: environment, tokens made by the official library's AccessToken,
// SDK clients pointed at Parley with the one documented option, and event waits with timeouts.

import { createRequire } from "node:module";
import twilio from "twilio";
import Chat from "twilio-chat";

const require = createRequire(import.meta.url);
export const CHAT_VERSION = require("twilio-chat/package.json").version;
export const TWILIO_VERSION = require("twilio/package.json").version;

const { AccessToken } = twilio.jwt;
const { ChatGrant } = AccessToken;

/** A required environment variable; exit 2 when missing. */
export function env(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`sdk: environment variable ${name} is required`);
    process.exit(2);
  }
  return v;
}

/** `http://host:port` → `ws://host:port/v3/wsconnect` (https → wss). */
export function wsconnectUrl(parleyUrl) {
  const u = new URL(parleyUrl);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  u.pathname = "/v3/wsconnect";
  u.search = "";
  return u.toString();
}

/**
 * An Access Token as a customer's token server makes it: the official AccessToken + ChatGrant.
 * `ttl` in seconds; a negative ttl gives a token that expired that long ago.
 */
export function makeToken({ accountSid, apiKeySid, apiKeySecret, serviceSid, identity, ttl = 3600 }) {
  const token = new AccessToken(accountSid, apiKeySid, apiKeySecret, { identity, ttl });
  token.addGrant(new ChatGrant({ serviceSid }));
  return token.toJwt();
}

/** The official REST library, pointed at Parley the way compat/node/check.mjs does it. */
export function restClient(parleyUrl, accountSid, authToken) {
  delete process.env.TWILIO_REGION;
  delete process.env.TWILIO_EDGE;
  const client = twilio(accountSid, authToken);
  client.chat.baseUrl = parleyUrl.replace(/\/+$/, "");
  return client;
}

/** Reject with `what` after `ms`; the timer never keeps the process alive. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    timer.unref?.();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Resolve with the first `event` on `emitter` whose argument satisfies `pred`; reject after
 * `ms` with `what`. Attach it BEFORE the action that should cause the event.
 */
export function waitEvent(emitter, event, pred, ms, what) {
  let listener;
  const p = new Promise((resolve) => {
    listener = (arg) => {
      let ok = false;
      try {
        ok = pred ? pred(arg) : true;
      } catch {
        ok = false;
      }
      if (ok) resolve(arg);
    };
    emitter.on(event, listener);
  });
  return withTimeout(p, ms, what).finally(() => emitter.removeListener(event, listener));
}

/** Resolve when no `event` satisfying `pred` arrives within `ms`; reject if one does. */
export function expectNoEvent(emitter, event, pred, ms, what) {
  return new Promise((resolve, reject) => {
    const listener = (arg) => {
      if (!pred || pred(arg)) {
        clearTimeout(timer);
        emitter.removeListener(event, listener);
        reject(new Error(`unexpected ${event}: ${what}`));
      }
    };
    const timer = setTimeout(() => {
      emitter.removeListener(event, listener);
      resolve();
    }, ms);
    emitter.on(event, listener);
  });
}

/** Poll `fn` until it returns a truthy value; reject with `what` (and the last value) after `ms`. */
export async function eventually(fn, ms, what, everyMs = 200) {
  const deadline = Date.now() + ms;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      const detail = lastErr ? `; last error: ${lastErr.message}` : `; last value: ${JSON.stringify(last)}`;
      throw new Error(`${what} (not within ${ms} ms${detail})`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Every SDK client created, so the runner can shut them all down. */
export const liveClients = new Set();

/**
 * An unmodified SDK client with only `twilsock.uri` changed, waited on until it is initialized
 * (stateChanged "initialized") or fails ("failed", connectionState "denied"/"error").
 */
export async function connect(token, wsUrl, ms, who) {
  const options = { twilsock: { uri: wsUrl } };
  // Debugging aid only: SDK_LOG=debug|trace|info turns on the SDK's own logging (stderr).
  if (process.env.SDK_LOG) options.logLevel = process.env.SDK_LOG;
  const client = new Chat.Client(token, options);
  liveClients.add(client);
  const outcome = new Promise((resolve, reject) => {
    client.on("stateChanged", (state) => {
      if (state === "initialized") resolve(client);
      if (state === "failed") reject(new Error(`${who}: client stateChanged "failed"`));
    });
    client.on("connectionStateChanged", (state) => {
      if (state === "denied" || state === "error") {
        reject(new Error(`${who}: connectionState "${state}"`));
      }
    });
    client.on("connectionError", (e) => reject(new Error(`${who}: connectionError ${JSON.stringify(e)}`)));
  });
  return withTimeout(outcome, ms, `${who} connects and initializes`);
}

/** Shut a client down without ever hanging the runner. */
export async function shutdown(client, ms = 5000) {
  liveClients.delete(client);
  try {
    await withTimeout(client.shutdown(), ms, "client shutdown");
  } catch {
    // A client that never initialized cannot shut down cleanly; the process exit ends it.
  }
}

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

export function assertEqual(got, want, what) {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`${what}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
  }
}

/** The channel object of `client` for `sid`, joined (status "joined"); `ms` per step. */
export async function joinedChannel(client, sid, who, ms) {
  const ch = await withTimeout(client.getChannelBySid(sid), ms, `${who} getChannelBySid(${sid})`);
  if (ch.status !== "joined") {
    const joined = waitEvent(client, "channelJoined", (c) => c.sid === sid, ms, `${who} gets channelJoined for ${sid}`);
    await withTimeout(ch.join(), ms, `${who} joins ${sid}`);
    await joined;
  }
  // As an app does after joining: load the latest messages. This also makes the SDK open the
  // channel's messages list and roster (Channel._subscribeStreams), so what is sent from now on
  // arrives as events; a message sent while they are still opening is history, not an event.
  await withTimeout(ch.getMessages(1), ms, `${who} loads the latest message of ${sid}`);
  return ch;
}

/**
 * Run `scenarios` in order ({name, core, needs, run}; `needs` names `ctx` fields that must be
 * set, otherwise SKIP; `run` may return {skip: reason}), each under `limitMs`, printing
 * `PASS name (ms)` / `FAIL name: reason` / `SKIP name: reason`. With `only` (words), scenarios
 * whose name contains none of them are left out (except `core` ones). Returns the counts.
 */
export async function runScenarios(scenarios, ctx, { only = [], limitMs }) {
  const counts = { passed: 0, failed: 0, skipped: 0 };
  for (const s of scenarios) {
    if (only.length && !s.core && !only.some((o) => s.name.includes(o))) continue;
    const missing = (s.needs || []).filter((n) => !ctx[n]);
    if (missing.length) {
      console.log(`SKIP ${s.name}: needs ${missing.join(", ")} from an earlier scenario`);
      counts.skipped += 1;
      continue;
    }
    const t0 = Date.now();
    try {
      const res = await withTimeout(Promise.resolve().then(() => s.run()), limitMs, s.name);
      if (res && res.skip) {
        console.log(`SKIP ${s.name}: ${res.skip}`);
        counts.skipped += 1;
      } else {
        console.log(`PASS ${s.name} (${Date.now() - t0} ms)`);
        counts.passed += 1;
      }
    } catch (e) {
      const detail = e && e.body ? ` ${JSON.stringify(e.body)}` : "";
      console.log(`FAIL ${s.name}: ${e && e.message ? e.message : String(e)}${detail}`);
      counts.failed += 1;
    } finally {
      if (s.cleanup) await s.cleanup().catch(() => {});
    }
  }
  return counts;
}

/** Every item of an SDK Paginator, following nextPage. */
export async function allPages(paginator, limit = 50) {
  const items = [...paginator.items];
  let page = paginator;
  for (let i = 0; page.hasNextPage && i < limit; i += 1) {
    page = await page.nextPage();
    items.push(...page.items);
  }
  return items;
}

export { Chat };
