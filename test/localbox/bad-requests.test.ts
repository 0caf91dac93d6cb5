// Requests a client made up or cut short, at the wire: forged list_folder cursors, a malformed
// OAuth Basic header, lone UTF-16 surrogates in paths, an RPC body over the limit on a keep-alive
// connection, a request head over 16 KiB, hundreds of headers, a body that stops arriving, and
// auth/token/revoke ending the whole token family. Each gets a clear answer (a Dropbox-style error
// or a closed connection), never a 500, a stuck connection or a name stored in a form it cannot be
// found by. Real local box child over HTTP and raw TCP; test's main thread.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Socket } from 'node:net';
import type { LocalBoxAccount } from '../../src/localbox/index.ts';
import { makeBox, type TestBox } from './helpers.ts';

const BODY_IDLE_MS = 1500;

let t: TestBox;
let acc: LocalBoxAccount;
test.before(async () => {
  t = await makeBox({}, { bodyIdleTimeoutMs: BODY_IDLE_MS });
  acc = await t.box.createAccount('alice');
});
test.after(async () => {
  await t.cleanup();
});

const cursorOf = (state: unknown): string => `AAE${Buffer.from(JSON.stringify(state)).toString('base64url')}`;

/** A raw connection to the box: what it answered by the time it closed (or `waitMs` passed), and whether it closed. */
function raw(send: (s: Socket) => void, waitMs: number): Promise<{ text: string; closed: boolean; ms: number }> {
  const url = new URL(t.box.url);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const s = connect(Number(url.port), url.hostname);
    let text = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text, closed: false, ms: Date.now() - started });
    }, waitMs);
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET' && (err as NodeJS.ErrnoException).code !== 'EPIPE') reject(err);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true, ms: Date.now() - started });
    });
    s.on('connect', () => send(s));
  });
}

test('forged list_folder cursors: 400 like a garbled one, or reset; never a 500', async () => {
  const listed = (await (await t.call('files/list_folder', acc.accessToken, { json: { path: '' } })).json()) as { cursor: string };
  const real = JSON.parse(Buffer.from(listed.cursor.slice(3), 'base64url').toString('utf8')) as Record<string, unknown>;
  const forged: unknown[] = [
    { ...real, a: '', l: 0 },
    { ...real, a: '', l: 'abc' },
    { ...real, a: '', l: 1.5 },
    { ...real, a: { x: 1 } },
    { ...real, a: '', l: -5 },
    { ...real, l: 1e12 },
    { ...real, s: -1 },
    { ...real, r: 'yes' },
    { ...real, d: undefined },
    { ...real, p: 'no-slash' },
    { ...real, ns: 'x' },
    [],
    null,
    'text',
  ];
  for (const state of forged) {
    for (const route of ['files/list_folder/continue', 'files/list_folder/longpoll']) {
      const r = await t.call(route, route.endsWith('longpoll') ? null : acc.accessToken, { json: { cursor: cursorOf(state) } });
      const text = await r.text();
      assert.is(r.status, 400, `${route} ${JSON.stringify(state)} → ${r.status} ${text.slice(0, 120)}`);
      assert.match(text, /Invalid "cursor" parameter/);
    }
  }
  // A position the log never reached: reset, as for another account's cursor.
  const ahead = await t.call('files/list_folder/continue', acc.accessToken, { json: { cursor: cursorOf({ ...real, a: undefined, s: 1e9 }) } });
  assert.is(ahead.status, 409);
  assert.equal(((await ahead.json()) as { error: unknown }).error, { '.tag': 'reset' });
  const aheadPoll = await t.call('files/list_folder/longpoll', null, { json: { cursor: cursorOf({ ...real, a: undefined, s: 1e9 }) } });
  assert.is(aheadPoll.status, 409);
  await aheadPoll.text();
  // The real cursor still works.
  const ok = await t.call('files/list_folder/continue', acc.accessToken, { json: { cursor: listed.cursor } });
  assert.is(ok.status, 200);
  await ok.text();
});

test('oauth2/token: a Basic header that is not URL encoding is invalid_client (400), a secret with a colon is read whole', async () => {
  let r = await fetch(`${t.box.url}/oauth2/token?grant_type=refresh_token&refresh_token=${acc.refreshToken}`, {
    method: 'POST',
    headers: { Authorization: `Basic ${Buffer.from('%zz:x').toString('base64')}` },
  });
  assert.is(r.status, 400);
  assert.is(((await r.json()) as { error: string }).error, 'invalid_client');
  r = await fetch(`${t.box.url}/oauth2/token?grant_type=refresh_token&refresh_token=${acc.refreshToken}`, {
    method: 'POST',
    headers: { Authorization: `Basic ${Buffer.from(`${acc.appKey}:${acc.appSecret}:extra`).toString('base64')}` },
  });
  assert.is(r.status, 400, 'the secret is "<secret>:extra", which is wrong');
  assert.is(((await r.json()) as { error: string }).error, 'invalid_grant');
  r = await fetch(`${t.box.url}/oauth2/token?grant_type=refresh_token&refresh_token=${acc.refreshToken}`, {
    method: 'POST',
    headers: { Authorization: `Basic ${Buffer.from(`${acc.appKey}:${acc.appSecret}`).toString('base64')}` },
  });
  assert.is(r.status, 200);
  await r.text();
});

test('paths with a lone UTF-16 surrogate are malformed_path (409), on RPC and upload routes alike', async () => {
  for (const path of ['/sur\ud800', '/a/\udfff.txt', '/x\ud800y']) {
    let r = await t.call('files/create_folder_v2', acc.accessToken, { body: `{"path": ${JSON.stringify(path)}}`, headers: { 'Content-Type': 'application/json' } });
    assert.is(r.status, 409, JSON.stringify(path));
    assert.equal(((await r.json()) as { error: unknown }).error, { '.tag': 'path', path: { '.tag': 'malformed_path' } });
    r = await t.call('files/upload', acc.accessToken, { arg: { path, mode: 'overwrite' }, body: 'x', headers: { 'Content-Type': 'application/octet-stream' } });
    assert.is(r.status, 409, JSON.stringify(path));
    await r.text();
  }
  // A well-formed pair (an emoji) is a name like any other.
  const r = await t.call('files/create_folder_v2', acc.accessToken, { json: { path: '/smile \ud83d\ude00' } });
  assert.is(r.status, 200);
  await r.text();
  const list = (await (await t.call('files/list_folder', acc.accessToken, { json: { path: '' } })).json()) as { entries: { name: string }[] };
  assert.ok(list.entries.some((e) => e.name === 'smile 😀'));
  assert.not.ok(list.entries.some((e) => e.name.includes('\ufffd')), 'no name stored as replacement characters');
});

test('an RPC body over the limit: 400, then the connection closes instead of waiting behind the unread body', async () => {
  const big = Buffer.alloc(10 * 1024 * 1024, 0x20);
  const head = (len: number, route: string): string =>
    `POST /2/${route} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${acc.accessToken}\r\nContent-Type: application/json\r\nContent-Length: ${len}\r\n\r\n`;
  const res = await raw((s) => {
    s.write(head(big.length, 'files/get_metadata'));
    s.write(big);
    s.write(`${head(4, 'users/get_space_usage')}null`);
  }, 20_000);
  assert.ok(res.closed, `the connection closed (${res.ms} ms)`);
  assert.match(res.text, /^HTTP\/1\.1 400 /);
  assert.match(res.text, /connection: close/i);
  assert.match(res.text, /request body too large/);
});

test('a request head over 16 KiB: 431 with a text body; 250 headers before Authorization are all read', async () => {
  const over = await raw((s) => s.write(`POST /2/check/user HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`), 10_000);
  assert.ok(over.closed);
  assert.match(over.text, /^HTTP\/1\.1 431 /);
  assert.match(over.text, /larger than 16 KiB/);
  const headers = new Headers();
  for (let i = 0; i < 250; i++) headers.set(`x-filler-${i}`, 'v');
  headers.set('Authorization', `Bearer ${acc.accessToken}`);
  headers.set('Content-Type', 'application/json');
  const r = await fetch(`${t.box.url}/2/check/user`, { method: 'POST', headers, body: JSON.stringify({ query: 'many' }) });
  assert.is(r.status, 200);
  assert.equal(await r.json(), { result: 'many' });
});

test('a body that stops arriving ends its connection after the idle timeout; a slow one that keeps coming does not', async () => {
  const head = (route: string, arg: unknown, len: number): string =>
    `POST /2/${route} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${acc.accessToken}\r\nContent-Type: application/octet-stream\r\nDropbox-API-Arg: ${JSON.stringify(arg)}\r\nContent-Length: ${len}\r\n\r\n`;
  const stalled = await raw((s) => {
    s.write(head('files/upload_session/start', { close: false }, 1000));
    s.write(Buffer.alloc(100, 1));
  }, BODY_IDLE_MS * 6);
  assert.ok(stalled.closed, 'a silent body is cut');
  assert.ok(stalled.ms >= BODY_IDLE_MS - 100, `not before the timeout (${stalled.ms} ms)`);
  // Slower than the timeout in all, but never idle that long: completes.
  const slow = await raw((s) => {
    s.write(head('files/upload', { path: '/slow.bin', mode: 'overwrite' }, 10));
    let sent = 0;
    const tick = setInterval(() => {
      s.write(Buffer.from([sent]));
      sent += 1;
      if (sent === 10) clearInterval(tick);
    }, BODY_IDLE_MS / 3);
  }, BODY_IDLE_MS * 6);
  assert.match(slow.text, /^HTTP\/1\.1 200 /);
  assert.match(slow.text, /"size":10/);
  // A longpoll (no body to wait for) is not cut by it.
  const listed = (await (await t.call('files/list_folder/get_latest_cursor', acc.accessToken, { json: { path: '' } })).json()) as { cursor: string };
  const started = Date.now();
  const polling = t.call('files/list_folder/longpoll', null, { json: { cursor: listed.cursor, timeout: 30 } }).then(async (r) => ({ status: r.status, body: await r.json() }));
  await new Promise((r) => setTimeout(r, BODY_IDLE_MS * 2));
  const change = await t.call('files/create_folder_v2', acc.accessToken, { json: { path: '/wake' } });
  assert.is(change.status, 200);
  await change.text();
  const poll = await polling;
  assert.is(poll.status, 200);
  assert.equal(poll.body, { changes: true });
  assert.ok(Date.now() - started >= BODY_IDLE_MS * 2, 'the longpoll waited past the body timeout');
});

test('auth/token/revoke ends the token family: its refresh token no longer mints access tokens', async () => {
  const bob = await t.box.createAccount('bob');
  const tok = async (refresh: string): Promise<Response> => fetch(`${t.box.url}/oauth2/token?grant_type=refresh_token&refresh_token=${refresh}&client_id=${bob.appKey}`, { method: 'POST' });
  const minted = (await (await tok(bob.refreshToken)).json()) as { access_token: string };
  const r = await t.call('auth/token/revoke', minted.access_token, { body: 'null', headers: { 'Content-Type': 'application/json' } });
  assert.is(r.status, 200);
  await r.text();
  for (const token of [minted.access_token, bob.accessToken]) {
    const c = await t.call('check/user', token, { json: { query: 'x' } });
    assert.is(c.status, 401, 'every access token of the family is revoked');
    await c.text();
  }
  const again = await tok(bob.refreshToken);
  assert.is(again.status, 400);
  assert.is(((await again.json()) as { error: string }).error, 'invalid_grant');
  // A new grant for the account starts a new family that works.
  const fresh = await t.box.createAccount('bob');
  assert.is.not(fresh.refreshToken, bob.refreshToken);
  const c = await t.call('check/user', fresh.accessToken, { json: { query: 'back' } });
  assert.is(c.status, 200);
  await c.text();
});

test.run();
