#!/usr/bin/env node
// Parley resilience with the unmodified twilio-chat 6.0.0 SDK: dropped networks, killed and
// restarted nodes, two nodes on one database, a slow consumer, a trimmed change log.
//
// This script starts and stops its own `parley serve` processes (no other server may be using
// the database when it is SQLite) and puts every SDK client behind an in-process TCP proxy that
// plays the network and the load balancer (cut every connection, refuse new ones, forward to
// whichever backend node is up).
//
// Environment (compat/sdk/run sets all of it, after its own server for the backend stopped):
//   PARLEY_BIN            the `parley` binary
//   SDK_DATABASE_URL      the database (sqlite://… or postgres://…), already migrated
//   PARLEY_SECRET_KEY     the server key the database was used with
//   ACCOUNT_SID, AUTH_TOKEN, API_KEY_SID, API_KEY_SECRET   an account of that database and an
//                         API key of it (tokens are signed with the key)
// Optional: SDK_BACKEND (sqlite|postgres; default from the URL), SDK_ONLY=word,word,
//   SDK_TIMEOUT_MS (per wait, default 20000), SDK_WORK_DIR (node logs; default a temp dir),
//   SDK_RESILIENCE_LIMIT_MS (whole run, default 5 min).
//
// Output as run.mjs: `PASS name (ms)`, `FAIL name: reason`, `SKIP name: reason`, then
// `sdk-resilience: N passed, N failed, N skipped`. Exit 0 all passed (skips allowed), 1 a
// scenario failed, 2 bad environment or the runner broke.

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, openSync, closeSync, readFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import {
  CHAT_VERSION,
  assert,
  assertEqual,
  connect,
  env,
  eventually,
  joinedChannel,
  liveClients,
  makeToken,
  restClient,
  runScenarios,
  shutdown,
  waitEvent,
  withTimeout,
  wsconnectUrl,
} from "./lib.mjs";

const BIN = env("PARLEY_BIN");
const DB_URL = env("SDK_DATABASE_URL");
env("PARLEY_SECRET_KEY"); // passed on to the nodes through the environment
const ACCOUNT_SID = env("ACCOUNT_SID");
const AUTH_TOKEN = env("AUTH_TOKEN");
const API_KEY_SID = env("API_KEY_SID");
const API_KEY_SECRET = env("API_KEY_SECRET");
const BACKEND = process.env.SDK_BACKEND || (DB_URL.startsWith("postgres") ? "postgres" : "sqlite");
const STEP_MS = Number(process.env.SDK_TIMEOUT_MS || 20000);
const ONLY = (process.env.SDK_ONLY || "").split(",").filter(Boolean);
const RUN = randomBytes(3).toString("hex");
const RUN_LIMIT_MS = Number(process.env.SDK_RESILIENCE_LIMIT_MS || 5 * 60 * 1000);
const WORK = process.env.SDK_WORK_DIR || mkdtempSync(join(tmpdir(), "parley-resilience-"));
/** Twilio's limit for a message body (32 KiB; Parley's MAX_BODY_BYTES). */
const MAX_BODY = 32 * 1024;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// -------------------------------------------------------------------------------------------
// Nodes: `parley serve` processes on the shared database.

const nodes = new Set();

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Start `parley serve` on `port` (a free one when absent) with `extra` arguments; resolves once
 * `/healthz` answers. `name` names its log file in the work directory. Push delivery is off
 * unless `push` (no device is registered in these scenarios either way).
 */
async function startNode(name, { port, extra = [], push = false } = {}) {
  const p = port || (await freePort());
  const url = `http://127.0.0.1:${p}`;
  const logPath = join(WORK, `node-${name}.log`);
  const fd = openSync(logPath, "a");
  const proc = spawn(
    BIN,
    ["serve", "--listen", `127.0.0.1:${p}`, "--database-url", DB_URL, "--public-url", url, "--push", String(push), ...extra],
    {
      stdio: ["ignore", fd, fd],
      env: {
        ...process.env,
        PARLEY_AUTH_FAILURE_LIMIT: "0",
        RUST_LOG: process.env.RUST_LOG || "info",
        // With push on, providers are a closed local port: nothing leaves the machine.
        PARLEY_FCM_URL: "http://127.0.0.1:9",
        PARLEY_APNS_URL: "http://127.0.0.1:9",
        PARLEY_APNS_SANDBOX_URL: "http://127.0.0.1:9",
      },
    },
  );
  closeSync(fd);
  const node = { name, port: p, url, proc, logPath, exit: null };
  node.exited = new Promise((resolve) => {
    proc.once("exit", (code, signal) => {
      node.exit = { code, signal };
      nodes.delete(node);
      resolve(node.exit);
    });
  });
  nodes.add(node);
  node.rest = restClient(url, ACCOUNT_SID, AUTH_TOKEN);
  node.ws = wsconnectUrl(url);
  await eventually(async () => {
    if (node.exit) throw new Error(`node ${name} exited: ${JSON.stringify(node.exit)} (log ${logPath})`);
    const r = await fetch(`${url}/healthz`);
    return r.ok;
  }, STEP_MS, `node ${name} answers /healthz on ${url}`, 100).catch((e) => {
    throw new Error(`${e.message}; log tail: ${tail(logPath)}`);
  });
  return node;
}

function tail(path, lines = 5) {
  try {
    return JSON.stringify(readFileSync(path, "utf8").trim().split("\n").slice(-lines).join("\n"));
  } catch {
    return "(no log)";
  }
}

/** SIGKILL a node and wait for it to be gone. */
async function killNode(node) {
  if (node.exit) return node.exit;
  node.proc.kill("SIGKILL");
  return node.exited;
}

/** SIGTERM a node; its exit ({code, signal}); SIGKILL after `ms`. */
async function stopNode(node, ms = 15000) {
  if (node.exit) return node.exit;
  node.proc.kill("SIGTERM");
  try {
    return await withTimeout(node.exited, ms, `node ${node.name} exits after SIGTERM`);
  } catch (e) {
    node.proc.kill("SIGKILL");
    await node.exited;
    throw e;
  }
}

/** A counter or gauge from a node's /metrics (the sum over label sets matching `labels`). */
async function metric(node, name, labels = "") {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/);
    if (m && m[1] === name && (m[2] || "").includes(labels)) sum += Number(m[3]);
  }
  return sum;
}

// -------------------------------------------------------------------------------------------
// The network: a TCP proxy per client group.

/**
 * Listens on 127.0.0.1 and forwards each connection to the first of `ports` that accepts it
 * (a load balancer's health check, by trying). `cut()` resets every live connection and refuses
 * new ones (reset at once) until `restore()`.
 */
class NetProxy {
  constructor(name, ports) {
    this.name = name;
    this.ports = ports;
    this.refusing = false;
    this.pairs = new Set();
    this.accepted = 0;
  }

  async start() {
    this.server = net.createServer((c) => this.accept(c));
    await new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", resolve);
    });
    this.port = this.server.address().port;
    this.ws = `ws://127.0.0.1:${this.port}/v3/wsconnect`;
    return this;
  }

  accept(client) {
    client.on("error", () => {});
    if (this.refusing) {
      client.resetAndDestroy();
      return;
    }
    client.pause();
    const attempt = (i) => {
      if (i >= this.ports.length || this.refusing) {
        client.resetAndDestroy();
        return;
      }
      const up = net.connect(this.ports[i], "127.0.0.1");
      let connected = false;
      up.on("error", () => {
        if (!connected) attempt(i + 1);
        else client.destroy();
      });
      up.once("connect", () => {
        connected = true;
        if (client.destroyed) {
          up.destroy();
          return;
        }
        const pair = { client, up };
        this.pairs.add(pair);
        this.accepted += 1;
        const drop = () => {
          this.pairs.delete(pair);
          if (!client.destroyed) client.destroy();
          if (!up.destroyed) up.destroy();
        };
        client.once("close", drop);
        up.once("close", drop);
        client.pipe(up);
        up.pipe(client);
        client.resume();
      });
    };
    attempt(0);
  }

  /** Reset every live connection and refuse new ones. */
  cut() {
    this.refusing = true;
    for (const { client, up } of [...this.pairs]) {
      client.resetAndDestroy();
      up.resetAndDestroy();
    }
    this.pairs.clear();
  }

  restore() {
    this.refusing = false;
  }

  close() {
    this.cut();
    return new Promise((r) => this.server.close(() => r()));
  }
}

const proxies = new Set();
async function proxy(name, ports) {
  const p = await new NetProxy(name, ports).start();
  proxies.add(p);
  return p;
}

// -------------------------------------------------------------------------------------------
// Chat helpers.

const ctx = { serviceSid: null };

/**
 * Connect each client (`[identity, wsUrl, label]`) and, for those named in `join` (labels),
 * wait until it sees channel `sid` as joined. Returns `{ clients, channels }` in input order
 * (a channel is `undefined` for a client not in `join`).
 */
async function connectAll(specs, sid, join = specs.map(([, , label]) => label)) {
  const clients = await Promise.all(
    specs.map(([identity, url, label]) => connect(token(identity), url, STEP_MS, label)),
  );
  const channels = await Promise.all(
    specs.map(([, , label], i) =>
      join.includes(label) ? joinedChannel(clients[i], sid, label.split(" ")[0], STEP_MS) : undefined,
    ),
  );
  return { clients, channels };
}

function token(identity, serviceSid = ctx.serviceSid, ttl = 3600) {
  return makeToken({
    accountSid: ACCOUNT_SID,
    apiKeySid: API_KEY_SID,
    apiKeySecret: API_KEY_SECRET,
    serviceSid,
    identity,
    ttl,
  });
}

/** A public channel made over REST on `node` with `identities` as members. */
async function restChannel(node, tag, identities, serviceSid = ctx.serviceSid) {
  const svc = node.rest.chat.v2.services(serviceSid);
  const ch = await svc.channels.create({ uniqueName: `${tag}-${RUN}`, friendlyName: tag, type: "public" });
  for (const identity of identities) {
    await svc.users.create({ identity }).catch(() => {}); // exists already: fine
    await svc.channels(ch.sid).members.create({ identity });
  }
  return ch.sid;
}

/** Every `messageAdded` of a channel object, in arrival order ({index, body, author}). */
function record(channel) {
  const seen = [];
  channel.on("messageAdded", (m) => seen.push({ index: m.index, body: m.body, author: m.author }));
  return seen;
}

/** A message body as shown in a failure (the long ones cut). */
const short = (b) => (typeof b === "string" && b.length > 24 ? `${b.slice(0, 24)}…` : b);
const shortAll = (bodies) => JSON.stringify(bodies.map(short));

/** `want` bodies each exactly once in `seen`, and `seen`'s indexes strictly increasing. */
function checkReceived(seen, want, who) {
  for (const body of want) {
    const n = seen.filter((m) => m.body === body).length;
    assert(n === 1, `${who} got "${short(body)}" ${n} times (expected once); got ${shortAll(seen.map((m) => m.body))}`);
  }
  for (let i = 1; i < seen.length; i += 1) {
    assert(seen[i].index > seen[i - 1].index, `${who}: messageAdded not in index order: ${JSON.stringify(seen.map((m) => [m.index, short(m.body)]))}`);
  }
}

/** Wait until every body of `want` was seen (then check exactly once, in order). */
async function receivedAll(seen, want, who, ms = STEP_MS) {
  await eventually(() => want.every((b) => seen.some((m) => m.body === b)), ms, `${who} receives ${shortAll(want)}`).catch((e) => {
    const missing = want.filter((b) => !seen.some((m) => m.body === b));
    throw new Error(`${e.message}; got ${seen.length}, missing ${missing.length}: ${shortAll(missing.slice(0, 5))}`);
  });
  checkReceived(seen, want, who);
}

function connectedAgain(client, who, ms = STEP_MS) {
  return eventually(() => client.connectionState === "connected", ms, `${who} is connected again (state ${client.connectionState})`, 100);
}

async function restBodies(node, channelSid) {
  const list = await node.rest.chat.v2.services(ctx.serviceSid).channels(channelSid).messages.list({ limit: 1000 });
  return list.map((m) => m.body);
}

async function closeAll() {
  for (const c of [...liveClients]) await shutdown(c, 3000);
}

// -------------------------------------------------------------------------------------------
// A raw twilsock client (the SDK's framing, sdk-transport.md §1), for the slow consumer.

function encodeFrame(header, payload = "") {
  const body = Buffer.from(payload);
  const h = Buffer.from(JSON.stringify({ ...header, payload_size: body.length }));
  return Buffer.concat([Buffer.from(`TWILSOCK V3.0 ${h.length}\r\n`), h, Buffer.from("\r\n"), body]);
}

function decodeFrame(buf) {
  const nl = buf.indexOf("\r\n");
  const len = Number(buf.subarray(14, nl).toString());
  const header = JSON.parse(buf.subarray(nl + 2, nl + 2 + len).toString());
  const start = nl + 2 + len + 2;
  const payload = buf.subarray(start, start + (header.payload_size || 0)).toString();
  return { header, payload };
}

class RawTwilsock {
  constructor(url) {
    this.url = url;
    this.n = 0;
    this.frames = [];
    this.waiters = [];
    this.closed = null;
  }

  open() {
    this.ws = new WebSocket(this.url);
    this.ws.on("message", (data) => {
      const f = decodeFrame(Buffer.from(data));
      if (f.header.method === "ping") {
        this.send({ method: "reply", id: f.header.id, status: { code: 200, status: "OK" } });
        return;
      }
      this.frames.push(f);
      this.poke();
    });
    this.ws.on("close", (code) => {
      this.closed = { code };
      this.poke();
    });
    this.ws.on("error", () => {});
    return new Promise((resolve, reject) => {
      this.ws.once("open", resolve);
      this.ws.once("error", reject);
    });
  }

  poke() {
    for (const w of this.waiters) w();
  }

  send(header, payload) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(encodeFrame(header, payload));
  }

  /** The first frame (past or future) satisfying `pred`. */
  async frame(pred, ms, what) {
    let wake;
    const p = new Promise((resolve, reject) => {
      wake = () => {
        const f = this.frames.find(pred);
        if (f) resolve(f);
        else if (this.closed) reject(new Error(`socket closed (${this.closed.code}) before: ${what}`));
      };
      this.waiters.push(wake);
      wake();
    });
    return withTimeout(p, ms, what).finally(() => {
      this.waiters = this.waiters.filter((w) => w !== wake);
    });
  }

  async request(method, path, body) {
    this.n += 1;
    const id = `TMraw${this.n}`;
    this.send(
      {
        method: "message",
        id,
        active_grant: "ip_messaging",
        payload_type: "application/json",
        http_request: { host: "cds.us1.twilio.com", path, method, params: {}, headers: { "Content-Type": "application/json" } },
      },
      body === undefined ? "" : JSON.stringify(body),
    );
    const r = await this.frame((f) => f.header.method === "reply" && f.header.id === id, STEP_MS, `reply to ${method} ${path}`);
    return { status: r.header.http_status && r.header.http_status.code, body: r.payload ? JSON.parse(r.payload) : null };
  }

  async init(tok) {
    this.send({
      method: "init",
      id: "TMraw0",
      token: tok,
      continuation_token: null,
      capabilities: ["client_update", "offline_storage"],
      registrations: [{ product: "ip_messaging", type: "ers", notification_protocol_version: 0, message_types: ["twilio.sync.event"] }],
      metadata: { type: "chat", sdk: "parley-resilience" },
    });
    const r = await this.frame((f) => f.header.id === "TMraw0", STEP_MS, "init reply");
    assertEqual(r.header.status && r.header.status.code, 200, "raw client init status");
  }

  /** Subscribe to a channel's messages list as twilio-sync does (docs/live-clients.md "Sync"). */
  async subscribeMessages(channelSid) {
    const list = await this.request("GET", `/v3/Lists/${channelSid}.messages`);
    assertEqual(list.status, 200, "GET the messages list");
    const body = {
      event_protocol_version: 4,
      action: "establish",
      correlation_id: 1,
      retried_requests: 0,
      ttl_in_s: -1,
      requests: [{ object_sid: list.body.sid, object_type: "list", last_event_id: list.body.last_event_id }],
    };
    const r = await this.request("POST", "/v4/Subscriptions", body);
    assertEqual(r.status, 202, "POST /v4/Subscriptions");
    const est = await this.frame((f) => {
      if (f.header.method !== "notification") return false;
      const p = JSON.parse(f.payload);
      return p.event_type === "subscription_established" || p.event_type === "subscription_failed";
    }, STEP_MS, "subscription_established");
    assertEqual(JSON.parse(est.payload).event_type, "subscription_established", "raw client subscription outcome");
  }

  /** Bodies of the list_item_added notifications received so far. */
  itemsAdded() {
    return this.frames
      .filter((f) => f.header.method === "notification")
      .map((f) => JSON.parse(f.payload))
      .filter((p) => p.event_type === "list_item_added" || (p.event && p.event.event_type === "list_item_added"))
      .length;
  }

  close() {
    try {
      this.ws.terminate();
    } catch {
      // already gone
    }
  }
}

// -------------------------------------------------------------------------------------------
// Scenarios.

const scenarios = [
  {
    name: "setup: a service (node started on the shared database)",
    core: true,
    async run() {
      const n = await startNode("setup");
      try {
        const svc = await n.rest.chat.v2.services.create({ friendlyName: `resilience ${RUN}` });
        ctx.serviceSid = svc.sid;
      } finally {
        await stopNode(n);
      }
    },
  },
  {
    name: "reconnect-replay: messages missed during a network cut arrive once, in order",
    needs: ["serviceSid"],
    async run() {
      const node = await startNode("replay");
      const net1 = await proxy("replay", [node.port]);
      const ids = { alice: `alice-r-${RUN}`, bob: `bob-r-${RUN}`, carol: `carol-r-${RUN}` };
      const sid = await restChannel(node, "replay", Object.values(ids));
      const {
        clients: [alice, bob, carol],
        channels: [aliceCh, bobCh, carolCh],
      } = await connectAll(
        [
          [ids.alice, net1.ws, "alice"],
          [ids.bob, net1.ws, "bob"],
          [ids.carol, node.ws, "carol (not behind the cut)"],
        ],
        sid,
      );
      const atBob = record(bobCh);
      const atAlice = record(aliceCh);
      // Live before the cut.
      await aliceCh.sendMessage(`before ${RUN}`);
      await receivedAll(atBob, [`before ${RUN}`], "bob (before the cut)");

      net1.cut();
      await eventually(() => bob.connectionState !== "connected", STEP_MS, "bob notices the cut", 50);
      const missed = [];
      for (let i = 1; i <= 3; i += 1) {
        const body = `missed ${i} ${RUN}`;
        await node.rest.chat.v2.services(ctx.serviceSid).channels(sid).messages.create({ body, from: "backend" });
        missed.push(body);
      }
      await withTimeout(carolCh.sendMessage(`from carol ${RUN}`), STEP_MS, "carol sends during the cut");
      missed.push(`from carol ${RUN}`);
      await sleep(500);
      assert(!atBob.some((m) => missed.includes(m.body)), "nothing reaches bob while the network is cut");
      net1.restore();

      await connectedAgain(bob, "bob");
      await receivedAll(atBob, [`before ${RUN}`, ...missed], "bob after the network is back");
      await receivedAll(atAlice, missed, "alice after the network is back");
      // Live again, and no late duplicates.
      await connectedAgain(alice, "alice");
      await aliceCh.sendMessage(`after ${RUN}`);
      await receivedAll(atBob, [`before ${RUN}`, ...missed, `after ${RUN}`], "bob (live after the reconnect)");
      await sleep(1000);
      checkReceived(atBob, [`before ${RUN}`, ...missed, `after ${RUN}`], "bob (a second later)");
      assertEqual(atBob.length, 6, "messageAdded events at bob");
    },
    async cleanup() {
      await closeAll();
    },
  },
  {
    name: "kill-restart: SIGKILL mid-stream, restart; every acknowledged message arrives once",
    needs: ["serviceSid"],
    async run() {
      let node = await startNode("kill-1");
      const port = node.port;
      const lb = await proxy("kill", [port]);
      const ids = { alice: `alice-k-${RUN}`, bob: `bob-k-${RUN}` };
      const sid = await restChannel(node, "kill", Object.values(ids));
      const {
        clients: [alice, bob],
        channels: [aliceCh, bobCh],
      } = await connectAll(
        [
          [ids.alice, lb.ws, "alice"],
          [ids.bob, lb.ws, "bob"],
        ],
        sid,
      );
      const atBob = record(bobCh);
      const acked = [];
      const failedSends = [];
      let stop = false;
      let i = 0;
      const loop = (async () => {
        while (!stop) {
          i += 1;
          const body = `k${i} ${RUN}`;
          try {
            await withTimeout(aliceCh.sendMessage(body), 25000, `send ${body}`);
            acked.push(body);
          } catch (e) {
            failedSends.push(body);
            await sleep(200);
          }
        }
      })();
      await eventually(() => acked.length >= 5, STEP_MS, "5 messages acknowledged before the kill", 20);
      const exit = await killNode(node);
      assertEqual(exit.signal, "SIGKILL", "the node was killed");
      const ackedBeforeKill = acked.length;
      await sleep(1500);
      node = await startNode("kill-2", { port });
      await eventually(() => acked.length >= ackedBeforeKill + 5, 3 * STEP_MS, `5 more messages acknowledged after the restart (acked ${acked.length}, failed ${failedSends.length})`, 100);
      stop = true;
      await loop;
      await connectedAgain(bob, "bob");
      await receivedAll(atBob, acked, "bob", 2 * STEP_MS);
      const history = await restBodies(node, sid);
      for (const body of acked) {
        const n = history.filter((b) => b === body).length;
        assert(n === 1, `REST history has "${body}" ${n} times (expected once)`);
      }
      const dupes = history.filter((b, k) => history.indexOf(b) !== k);
      assert(dupes.length === 0, `no message is stored twice (duplicates: ${JSON.stringify(dupes)})`);
      return { note: `${acked.length} acknowledged, ${failedSends.length} refused while down` };
    },
    async cleanup() {
      await closeAll();
    },
  },
  {
    name: "two-nodes: live both ways across nodes; SIGTERM one, its clients move on",
    needs: ["serviceSid"],
    async run() {
      if (BACKEND !== "postgres") return { skip: "several nodes share a PostgreSQL database only (SQLite is one process)" };
      const n1 = await startNode("two-1");
      const n2 = await startNode("two-2");
      const toN1 = await proxy("alice", [n1.port, n2.port]);
      const toN2 = await proxy("bob", [n2.port]);
      const ids = { alice: `alice-2-${RUN}`, bob: `bob-2-${RUN}`, carol: `carol-2-${RUN}` };
      const sid = await restChannel(n1, "two", [ids.alice, ids.bob]);
      const {
        clients: [alice, bob, carol],
        channels: [aliceCh, bobCh],
      } = await connectAll(
        [
          [ids.alice, toN1.ws, "alice (node 1)"],
          [ids.bob, toN2.ws, "bob (node 2)"],
          [ids.carol, n1.ws, "carol (node 1)"],
        ],
        sid,
        ["alice (node 1)", "bob (node 2)"],
      );
      const atAlice = record(aliceCh);
      const atBob = record(bobCh);
      const fromAlice = [];
      const fromBob = [];
      for (let k = 1; k <= 3; k += 1) {
        fromAlice.push(`a${k} ${RUN}`);
        await aliceCh.sendMessage(`a${k} ${RUN}`);
      }
      await receivedAll(atBob, fromAlice, "bob on node 2", 5000);
      for (let k = 1; k <= 3; k += 1) {
        fromBob.push(`b${k} ${RUN}`);
        await bobCh.sendMessage(`b${k} ${RUN}`);
      }
      await receivedAll(atAlice, [...fromAlice, ...fromBob], "alice on node 1", 5000);
      // A join on node 1 is seen on node 2.
      const joined = waitEvent(bobCh, "memberJoined", (m) => m.identity === ids.carol, 5000, "bob (node 2) sees carol join on node 1");
      await joinedChannel(carol, sid, "carol", STEP_MS);
      await joined;
      await shutdown(carol);

      // Node 1 goes away (SIGTERM: close 308 with a backoff); alice's proxy now reaches node 2.
      const dropped = eventually(() => alice.connectionState !== "connected", STEP_MS, "alice is disconnected by node 1's shutdown", 50);
      const stopping = stopNode(n1);
      await dropped;
      // bob keeps talking while alice moves.
      for (let k = 4; k <= 5; k += 1) {
        fromBob.push(`b${k} ${RUN}`);
        await bobCh.sendMessage(`b${k} ${RUN}`);
      }
      const exit = await stopping;
      assertEqual(exit, { code: 0, signal: null }, "node 1 exit after SIGTERM");
      await connectedAgain(alice, "alice (through her proxy, to node 2)", 2 * STEP_MS);
      await receivedAll(atAlice, [...fromAlice, ...fromBob], "alice after moving to node 2");
      fromAlice.push(`a4 ${RUN}`);
      await withTimeout(aliceCh.sendMessage(`a4 ${RUN}`), STEP_MS, "alice sends from node 2");
      await receivedAll(atBob, fromAlice, "bob");
      fromBob.push(`b6 ${RUN}`);
      await bobCh.sendMessage(`b6 ${RUN}`);
      await receivedAll(atAlice, [...fromAlice.slice(0, 3), ...fromBob, `a4 ${RUN}`], "alice");
      const history = await restBodies(n2, sid);
      for (const body of [...fromAlice, ...fromBob]) assert(history.includes(body), `REST history has "${body}"`);
    },
    async cleanup() {
      await closeAll();
    },
  },
  {
    name: "two-nodes-typing: typing on node 1 reaches a member on node 2",
    needs: ["serviceSid"],
    async run() {
      if (BACKEND !== "postgres") return { skip: "several nodes share a PostgreSQL database only (SQLite is one process)" };
      const n1 = await startNode("typing-1");
      const n2 = await startNode("typing-2");
      const ids = { alice: `alice-t-${RUN}`, bob: `bob-t-${RUN}`, carol: `carol-t-${RUN}` };
      const sid = await restChannel(n1, "typing", Object.values(ids));
      const {
        clients: [alice, bob, carol],
        channels: [aliceCh, bobCh, carolCh],
      } = await connectAll(
        [
          [ids.alice, n1.ws, "alice (node 1)"],
          [ids.bob, n2.ws, "bob (node 2)"],
          [ids.carol, n1.ws, "carol (node 1)"],
        ],
        sid,
      );
      const seen = { bob: false, carol: false };
      const atBob = waitEvent(bobCh, "typingStarted", (m) => m.identity === ids.alice, 5000, "bob").then(() => { seen.bob = true; });
      const atCarol = waitEvent(carolCh, "typingStarted", (m) => m.identity === ids.alice, 5000, "carol").then(() => { seen.carol = true; });
      await aliceCh.typing();
      await Promise.allSettled([atBob, atCarol]);
      // carol, on alice's node, is the control: typing itself works.
      assert(seen.carol, "carol (same node as alice) gets typingStarted: typing itself is broken");
      assert(seen.bob, "bob (node 2) gets no typingStarted for alice's typing on node 1, while carol on node 1 does");
    },
    async cleanup() {
      await closeAll();
    },
  },
  {
    name: "slow-consumer: a socket that stops reading is cut; the others get everything in order",
    needs: ["serviceSid"],
    async run() {
      const QUEUE = 16;
      const node = await startNode("slow", { extra: ["--live-send-queue", String(QUEUE)] });
      const lb = await proxy("slow", [node.port]);
      const ids = { bob: `bob-s-${RUN}`, slow: `slow-s-${RUN}` };
      const sid = await restChannel(node, "slow", [ids.bob]);
      const bob = await connect(token(ids.bob), lb.ws, STEP_MS, "bob");
      const bobCh = await joinedChannel(bob, sid, "bob", STEP_MS);
      const atBob = record(bobCh);
      const raw = new RawTwilsock(node.ws);
      await raw.open();
      await raw.init(token(ids.slow));
      await raw.subscribeMessages(sid);
      // The slow client stops reading: the kernel buffers fill, then the server's queue.
      raw.ws._socket.pause();
      // Enough bytes to fill both kernel buffers of a paused loopback connection (the send
      // buffer grows to tcp_wmem's max; the receive buffer stays near its default when nothing
      // is read) and then the queue, with a margin.
      const [, rmemDefault] = readFileSync("/proc/sys/net/ipv4/tcp_rmem", "utf8").trim().split(/\s+/).map(Number);
      const [, , wmemMax] = readFileSync("/proc/sys/net/ipv4/tcp_wmem", "utf8").trim().split(/\s+/).map(Number);
      const total = Math.ceil((1.5 * (2 * rmemDefault + wmemMax)) / MAX_BODY) + 2 * QUEUE;
      const bodies = [];
      const svc = node.rest.chat.v2.services(ctx.serviceSid).channels(sid).messages;
      const filler = "x".repeat(MAX_BODY - 32);
      const t0 = Date.now();
      // One at a time: bob's queue is as small as the slow client's, and a burst larger than it
      // would cut bob too (each message is two notifications for him: list item, document).
      for (let k = 0; k < total; k += 1) {
        const body = `${String(k).padStart(5, "0")} ${RUN} ${filler}`.slice(0, MAX_BODY);
        bodies.push(body);
        await svc.create({ body, from: "flood" });
      }
      const postedMs = Date.now() - t0;
      await receivedAll(atBob, bodies, `bob (all ${total} messages of ${MAX_BODY} bytes)`, 2 * STEP_MS);
      const lag = Date.now() - t0 - postedMs;
      // Resume the slow reader: it must find itself cut off (twilsock close 503 and websocket
      // 1013), having received only part of the messages.
      raw.ws._socket.resume();
      await eventually(() => raw.closed, 2 * STEP_MS, "the slow socket is closed by the server", 100);
      const close = raw.frames.find((f) => f.header.method === "close");
      const got = raw.itemsAdded();
      assert(got < total, `the slow client was cut before the end (it got ${got} of ${total})`);
      const status = close ? close.header.status && close.header.status.code : null;
      assert(
        status === 503 || raw.closed.code === 1013 || raw.closed.code === 1006,
        `the slow client is told 503/1013 or dropped (close frame ${JSON.stringify(close && close.header.status)}, websocket ${raw.closed.code})`,
      );
      raw.close();
      // bob is still connected and live.
      assertEqual(bob.connectionState, "connected", "bob's connectionState");
      return { note: `${total} messages in ${postedMs} ms, bob ${lag} ms behind; slow client got ${got}, close ${status}/${raw.closed.code}` };
    },
    async cleanup() {
      await closeAll();
    },
  },
  {
    name: "trimmed-interrupted: after a cut longer than retention the SDK recovers and reloads",
    needs: ["serviceSid"],
    async run() {
      const node = await startNode("trim", {
        // Push on: a new_message event is trimmed only once the push worker has taken its
        // outbox row (no device is registered here, so nothing is sent).
        extra: ["--change-log-retention-secs", "1", "--change-log-trim-interval-secs", "1"],
        push: true,
      });
      const lb = await proxy("trim", [node.port]);
      // A service of its own: the shared one's webhook-consumer position may still be leased
      // (60 s) by a node an earlier scenario killed, and trimming waits for that position.
      const service = (await node.rest.chat.v2.services.create({ friendlyName: `trim ${RUN}` })).sid;
      const ids = { bob: `bob-x-${RUN}` };
      const sid = await restChannel(node, "trim", [ids.bob], service);
      const bob = await connect(token(ids.bob, service), lb.ws, STEP_MS, "bob");
      const bobCh = await joinedChannel(bob, sid, "bob", STEP_MS);
      const atBob = record(bobCh);
      const messages = node.rest.chat.v2.services(service).channels(sid).messages;
      await messages.create({ body: `t0 ${RUN}`, from: "backend" });
      await receivedAll(atBob, [`t0 ${RUN}`], "bob before the cut");
      const interrupted0 = await metric(node, "parley_sync_replays_total", 'outcome="interrupted"');

      lb.cut();
      // Wait for trimming to catch up with everything so far (the counter stops moving), so
      // that the next rise is the messages posted during the cut.
      let last = -1;
      await eventually(async () => {
        const now = await metric(node, "parley_change_log_trimmed_total");
        const still = now === last;
        last = now;
        return still && now > 0;
      }, STEP_MS, "trimming is caught up", 2500);
      const trimmedBefore = last;
      const missed = [`t1 ${RUN}`, `t2 ${RUN}`, `t3 ${RUN}`];
      for (const body of missed) await messages.create({ body, from: "backend" });
      await eventually(
        async () => (await metric(node, "parley_change_log_trimmed_total")) >= trimmedBefore + missed.length,
        STEP_MS,
        "the messages posted during the cut are trimmed (parley_change_log_trimmed_total)",
        250,
      );
      lb.restore();

      await connectedAgain(bob, "bob");
      await eventually(
        async () => (await metric(node, "parley_sync_replays_total", 'outcome="interrupted"')) > interrupted0,
        STEP_MS,
        "the server answers bob's re-establish with replay_status interrupted (parley_sync_replays_total)",
        100,
      );
      // The SDK goes on: a message posted now arrives live.
      await sleep(500);
      const later = `t4 ${RUN}`;
      const live = waitEvent(bobCh, "messageAdded", (m) => m.body === later, STEP_MS, "bob receives a message posted after the recovery");
      await messages.create({ body: later, from: "backend" });
      await live;
      // The app reloads: getMessages() has everything, the trimmed window included.
      const page = await withTimeout(bobCh.getMessages(30), STEP_MS, "bob getMessages()");
      assertEqual(page.items.map((m) => m.body), [`t0 ${RUN}`, ...missed, later], "bob's getMessages() after the recovery");
      const asEvents = atBob.filter((m) => missed.includes(m.body)).length;
      return { note: `bob got ${asEvents} of the ${missed.length} trimmed messages as messageAdded; the reload shows all` };
    },
    async cleanup() {
      await closeAll();
    },
  },
];

// -------------------------------------------------------------------------------------------

function killEverything() {
  for (const n of [...nodes]) {
    try {
      n.proc.kill("SIGKILL");
    } catch {
      // gone
    }
  }
}

async function main() {
  const hardStop = setTimeout(() => {
    console.log(`FAIL runner: the whole run exceeded ${RUN_LIMIT_MS} ms`);
    killEverything();
    process.exit(2);
  }, RUN_LIMIT_MS);
  hardStop.unref();
  process.on("exit", killEverything);
  for (const sig of ["SIGTERM", "SIGINT"]) {
    process.on(sig, () => {
      console.log(`FAIL runner: ${sig}`);
      killEverything();
      process.exit(2);
    });
  }
  process.on("unhandledRejection", (e) => {
    if (process.env.SDK_DEBUG) console.error("sdk: unhandled rejection:", e);
  });

  console.log(`sdk-resilience: twilio-chat ${CHAT_VERSION}, backend ${BACKEND}, node logs in ${WORK}, run ${RUN}`);
  const wrapped = scenarios.map((s) => ({
    ...s,
    async run() {
      const res = await s.run();
      if (res && res.note) console.log(`  ${s.name.split(":")[0]}: ${res.note}`);
      return res;
    },
    async cleanup() {
      if (s.cleanup) await s.cleanup();
      for (const p of [...proxies]) await p.close();
      proxies.clear();
      for (const n of [...nodes]) await stopNode(n).catch(() => killNode(n));
    },
  }));
  const { passed, failed, skipped } = await runScenarios(wrapped, ctx, { only: ONLY, limitMs: STEP_MS * 4 });
  await closeAll();
  console.log(`sdk-resilience: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.log(`FAIL runner: ${e && e.stack ? e.stack : e}`);
    process.exit(2);
  },
);
