// The browser scenario: headless Chromium (Debian's `chromium`, driven by puppeteer-core) loads a
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

/** Serve the page and the SDK bundle on localhost; resolves to { url, close }. */
function servePage() {
  const bundle = readFileSync(join(dirname(require.resolve("twilio-chat/package.json")), "builds", "twilio-chat.min.js"));
  const page = readFileSync(join(HERE, "browser", "index.html"));
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/" || path === "/index.html") {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end(page);
    } else if (path === "/twilio-chat.min.js") {
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
 * Run the page as `identity`; the Node-side `peerChannel` (of `peerIdentity`) must receive the
 * page's message live and answer; the page must receive the answer live.
 */
export async function browserScenario({ wsUrl, token, channelSid, identity, peerChannel, peerIdentity, run, timeoutMs }) {
  const exe = chromiumPath();
  if (!exe) {
    if (process.env.CI === "true") throw new Error("no Chromium found (CHROMIUM, /usr/bin/chromium); CI requires the browser scenario");
    return { skip: "no Chromium found (set CHROMIUM or install Debian's chromium)" };
  }
  const { default: puppeteer } = await import("puppeteer-core");
  const site = await servePage();
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
    const page = await browser.newPage();
    page.on("console", (m) => pageLog.push(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => pageLog.push(`pageerror: ${e.message}`));
    page.on("requestfailed", (r) => pageLog.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));

    const fromPage = waitEvent(
      peerChannel,
      "messageAdded",
      (m) => m.body === `from browser ${run}`,
      timeoutMs,
      "the Node peer receives the browser's message",
    );
    const hash = new URLSearchParams({ ws: wsUrl, token, channel: channelSid, peer: peerIdentity, run }).toString();
    await withTimeout(page.goto(`${site.url}#${hash}`, { waitUntil: "load" }), timeoutMs, "the page loads");
    const m = await fromPage;
    if (m.author !== identity) throw new Error(`browser message author: expected ${identity}, got ${m.author}`);
    await peerChannel.sendMessage(`to browser ${run}`);
    await withTimeout(
      page.waitForFunction("window.__parleyResult !== null", { timeout: timeoutMs }),
      timeoutMs + 1000,
      "the page reports a result",
    );
    const result = await page.evaluate("window.__parleyResult");
    if (!result || !result.ok) throw new Error(`the page failed: ${JSON.stringify(result)}`);
    if (result.author !== peerIdentity) throw new Error(`page saw author ${result.author}`);
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
