// The browser scenarios: headless Chromium (Debian's `chromium`, driven by puppeteer-core) loads a
// page that uses the SDK's own browser bundle. The page is served from `http://localhost:<p>`,
// another origin than Parley's `http://127.0.0.1:<port>`, as a real web app would be, so the
// browser's websocket (and any cross-origin request the SDK makes) is exercised for real.

import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { waitEvent, withTimeout } from "./lib.mjs";

const require = createRequire(import.meta.url);
const HERE = dirname(fileURLToPath(import.meta.url));

/** The SDK's browser bundle, as the package ships it. */
function sdkBundle() {
  return readFileSync(join(dirname(require.resolve("twilio-chat/package.json")), "builds", "twilio-chat.min.js"));
}

/**
 * Serve `page` at `/` and the SDK bundle at every path in `bundlePaths` on localhost;
 * resolves to { url, close }.
 */
function servePage(page, bundlePaths) {
  const bundle = sdkBundle();
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/" || path === "/index.html") {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end(page);
    } else if (bundlePaths.includes(path)) {
      res.writeHead(200, { "Content-Type": "application/javascript" });
      res.end(bundle);
    } else if (path === "/favicon.ico") {
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      resolve({
        url: `http://localhost:${port}/`,
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}

export function chromiumPath() {
  const candidates = [process.env.CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"].filter(Boolean);
  return candidates.find((p) => existsSync(p)) || null;
}

/**
 * Start Chromium, serve `page`, run `body(page, siteUrl, pageLog)`, and always close both.
 * Resolves to `{ skip }` when there is no Chromium (a failure under CI=true).
 */
async function withBrowser(page, bundlePaths, timeoutMs, body) {
  const exe = chromiumPath();
  if (!exe) {
    if (process.env.CI === "true") throw new Error("no Chromium found (CHROMIUM, /usr/bin/chromium); CI requires the browser scenarios");
    return { skip: "no Chromium found (set CHROMIUM or install Debian's chromium)" };
  }
  const { default: puppeteer } = await import("puppeteer-core");
  const site = await servePage(page, bundlePaths);
  const pageLog = [];
  let browser = null;
  try {
    browser = await withTimeout(
      puppeteer.launch({
        executablePath: exe,
        headless: true,
        // Root needs --no-sandbox; the rest keep Chromium from calling Google's hosts (this
        // machine's network is closed, and those attempts are refused by the dozen).
        args: [
          "--no-sandbox",
          "--disable-dev-shm-usage",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
        ],
      }),
      timeoutMs,
      "Chromium starts",
    );
    const tab = await browser.newPage();
    tab.on("console", (m) => pageLog.push(`console.${m.type()}: ${m.text()}`));
    tab.on("pageerror", (e) => pageLog.push(`pageerror: ${e.message}`));
    tab.on("requestfailed", (r) => pageLog.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
    await body(tab, site.url);
    return undefined;
  } catch (e) {
    const tail = pageLog.slice(-15).join(" | ");
    throw new Error(`${e.message}${tail ? ` [page: ${tail}]` : ""}`);
  } finally {
    if (browser) {
      const proc = browser.process();
      try {
        await withTimeout(browser.close(), 5000, "Chromium closes");
      } catch {
        proc?.kill("SIGKILL");
      }
    }
    await site.close();
  }
}

/**
 * The test page (browser/index.html) as `identity`: the Node-side `peerChannel` (of
 * `peerIdentity`) must receive the page's message live and answer; the page must receive the
 * answer live.
 */
export async function browserScenario({ wsUrl, token, channelSid, identity, peerChannel, peerIdentity, run, timeoutMs }) {
  const page = readFileSync(join(HERE, "browser", "index.html"));
  return withBrowser(page, ["/twilio-chat.min.js"], timeoutMs, async (tab, url) => {
    const fromPage = waitEvent(
      peerChannel,
      "messageAdded",
      (m) => m.body === `from browser ${run}`,
      timeoutMs,
      "the Node peer receives the browser's message",
    );
    const hash = new URLSearchParams({ ws: wsUrl, token, channel: channelSid, peer: peerIdentity, run }).toString();
    await withTimeout(tab.goto(`${url}#${hash}`, { waitUntil: "load" }), timeoutMs, "the page loads");
    const m = await fromPage;
    if (m.author !== identity) throw new Error(`browser message author: expected ${identity}, got ${m.author}`);
    await peerChannel.sendMessage(`to browser ${run}`);
    await tab.waitForFunction("window.__parleyResult !== null", { timeout: timeoutMs }).catch((e) => {
      throw new Error(`the page reports no result within ${timeoutMs} ms (${e.message})`);
    });
    const result = await tab.evaluate("window.__parleyResult");
    if (!result || !result.ok) throw new Error(`the page failed: ${JSON.stringify(result)}`);
    if (result.author !== peerIdentity) throw new Error(`page saw author ${result.author}`);
  });
}

/**
 * examples/browser-chat/index.html as a person uses it: paste the server URL and a token, log
 * in, create a channel with the form, send a message with the form; `peer` (a Node client)
 * joins that channel by its unique name and answers; the page shows the answer live.
 */
export async function examplePageScenario({ wsUrl, token, identity, peer, peerIdentity, run, timeoutMs }) {
  const page = readFileSync(join(HERE, "..", "..", "examples", "browser-chat", "index.html"));
  return withBrowser(page, ["/node_modules/twilio-chat/builds/twilio-chat.min.js"], timeoutMs, async (tab, url) => {
    const text = (sel) => tab.$eval(sel, (el) => el.textContent);
    const until = async (fn, what, arg) => {
      try {
        await tab.waitForFunction(fn, { timeout: timeoutMs }, arg);
      } catch (e) {
        const status = await text("#status").catch(() => "?");
        throw new Error(`${what}: not within ${timeoutMs} ms (page status: "${status}"; ${e.message})`);
      }
    };
    await withTimeout(tab.goto(url, { waitUntil: "load" }), timeoutMs, "the example page loads");
    await tab.$eval("#server", (el, v) => { el.value = v; }, wsUrl);
    await tab.$eval("#token", (el, v) => { el.value = v; }, token);
    await tab.click("#connect");
    await until((who) => document.getElementById("status").textContent === `connected as ${who}`, "the page says 'connected as …'", identity);
    const name = `example-${run}`;
    await tab.type("#newName", name);
    await tab.click("#create button");
    await until(() => !document.getElementById("text").disabled, "the created channel opens (send box enabled)");
    await until((n) => [...document.querySelectorAll("#mine li")].some((li) => li.textContent === n), "the channel is listed under 'My channels'", name);
    await tab.type("#text", `typed in the example ${run}`);
    await tab.click("#send button");
    await until((t) => document.getElementById("messages").textContent.includes(t), "the page shows its own message", `typed in the example ${run}`);
    // A Node user joins and answers; the page shows it live.
    const channel = await peer.getChannelByUniqueName(name);
    if (channel.status !== "joined") await channel.join();
    await channel.sendMessage(`answer from ${peerIdentity} ${run}`);
    await until((t) => document.getElementById("messages").textContent.includes(t), "the page shows the answer live", `${peerIdentity}answer from ${peerIdentity} ${run}`);
    const shown = await text("#messages");
    if (!shown.includes(`${identity}typed in the example ${run}`)) throw new Error(`own message shown with author: ${shown}`);
  });
}
