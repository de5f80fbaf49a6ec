// Smoke test of Parley's /v3/wsconnect with Twilio's own twilsock client (not part of
// scripts/test). Usage:
//   npm install --ignore-scripts --prefix /tmp/tsk twilsock@0.12.2
//   NODE_PATH=/tmp/tsk/node_modules node scripts/twilsock-smoke.js AC… SK… <key secret> IS… \
//     ws://127.0.0.1:8080/v3/wsconnect
// Run the server with --live-ping-interval-secs 2 to see pings acked. Expected: connected,
// a storage id, upstream 404s with Twilio bodies (until the chat client API exists), a token
// update, then for a 5 s token tokenAboutToExpire and tokenExpired, and for an expired token
// state "denied" with errorCode 20104.
const crypto = require('crypto');
const { TwilsockClient } = require('twilsock');

const [AC, SK, SECRET, IS, URI] = process.argv.slice(2);
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
function token(identity, ttl) {
  const now = Math.floor(Date.now() / 1000);
  const input = b64({ alg: 'HS256', cty: 'twilio-fpa;v=1', typ: 'JWT' }) + '.' +
    b64({ jti: `${SK}-${now}`, grants: { identity, chat: { service_sid: IS } }, iss: SK, sub: AC,
      exp: now + ttl, nbf: now });
  return input + '.' + crypto.createHmac('sha256', SECRET).update(input).digest('base64url');
}
const log = (...a) => console.log(new Date().toISOString().slice(11, 23), ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function client(name, tok) {
  const c = new TwilsockClient(tok, 'ip_messaging', { twilsock: { uri: URI }, clientMetadata: {} });
  c.on('stateChanged', (s) => log(name, 'state', s));
  c.on('connectionError', (e) => log(name, 'connectionError', JSON.stringify(e)));
  c.on('tokenAboutToExpire', () => log(name, 'tokenAboutToExpire'));
  c.on('tokenExpired', () => log(name, 'tokenExpired'));
  c.on('message', (t, p) => log(name, 'notification', t, JSON.stringify(p)));
  c.connect();
  return c;
}

(async () => {
  const c = client('a', token('alice', 3600));
  await new Promise((r) => c.on('connected', r));
  log('a storageId', JSON.stringify(await c.storageId()));
  for (const [method, url, body] of [
    ['get', 'https://aim.us1.twilio.com/Client/v1/Configuration', undefined],
    ['post', 'https://ers.us1.twilio.com/v1/registrations?productId=ip_messaging', { x: 1 }],
    ['post', 'https://aim.us1.twilio.com/Client/v1/Big', { pad: 'x'.repeat(200000) }],
  ]) {
    try {
      const r = method === 'get' ? await c.get(url, {})
        : await c.post(url, { 'Content-Type': 'application/json' }, body);
      log('a', method, url, r.status.code, JSON.stringify(r.body).slice(0, 120));
    } catch (e) {
      log('a', method, url, 'failed', e.status, JSON.stringify(e.body).slice(0, 120));
    }
  }
  await c.updateToken(token('alice', 3600));
  log('a token updated');
  await sleep(4500);
  await c.disconnect();
  const d = client('d', token('alice', 5));
  await sleep(7000);
  await d.disconnect();
  client('e', token('alice', -3600));
  await sleep(2000);
  process.exit(0);
})();
