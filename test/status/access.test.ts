// Who may reach the status page, over plain HTTP against the real service (startDropftp, admin
// listener in token mode): no token or a wrong one → 401 for / and /status.json; the right Bearer or
// the login cookie (HttpOnly, SameSite=Strict) → the data; a foreign Host → refused (DNS
// rebinding), /metrics and /healthz untouched; cross-site POSTs refused; a Bearer POST disconnects a
// real FTP session. And the rules themselves: a non-loopback listener needs a token, the token never
// comes from a flag, a token file readable by others is refused.

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'undici';
import { AdminAccess, hostName, isLoopback, loadToken } from '../../src/admin/access.ts';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { startDropftp, type Dropftp } from '../../src/server.ts';

const TOKEN = 'test-token-0123456789abcdef';
let dir = '';
let service: Dropftp;
let base = '';

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dropftp-status-access-'));
  service = await startDropftp({ dataDir: dir, host: '127.0.0.1', port: 0, engineWorkers: 1, admin: { host: '127.0.0.1', port: 0, token: TOKEN, requireToken: true } });
  base = `http://127.0.0.1:${service.admin!.port}`;
});

test.after(async () => {
  await service.close();
  rmSync(dir, { recursive: true, force: true });
});

async function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const res = await request(`${base}${path}`, { headers });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

async function post(path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const res = await request(`${base}${path}`, { method: 'POST', headers, ...(body !== undefined ? { body } : {}) });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

test('no token or a wrong one: 401 for / and /status.json; the right Bearer: the data', async () => {
  for (const path of ['/', '/status.json']) {
    assert.is((await get(path)).status, 401, `${path} without a token`);
    assert.is((await get(path, { authorization: 'Bearer wrong-token-wrong-token' })).status, 401, `${path} with a wrong token`);
    assert.is((await get(path, { authorization: `Bearer ${TOKEN}x` })).status, 401, `${path} with a longer token`);
    assert.is((await get(path, { cookie: 'dropftp_admin=forged' })).status, 401, `${path} with a forged cookie`);
  }
  const denied = await get('/status.json');
  assert.not.match(denied.text, /sessions/);
  const ok = await get('/status.json', { authorization: `Bearer ${TOKEN}` });
  assert.is(ok.status, 200);
  const data = JSON.parse(ok.text) as { version: number; totals: { sessions: number }; tokenRequired: boolean };
  assert.is(data.version, 1);
  assert.is(data.tokenRequired, true);
  assert.not.ok(ok.text.includes(TOKEN), 'the token is never echoed');
  assert.match(String(ok.headers['content-security-policy']), /script-src 'self'/);
  assert.not.match(String(ok.headers['content-security-policy']), /unsafe-inline/);
  // The page's own files carry no data: served without the token.
  assert.is((await get('/status.js')).status, 200);
  assert.is((await get('/status.css')).status, 200);
});

test('a foreign Host is refused; /metrics and /healthz keep their behaviour', async () => {
  for (const path of ['/', '/status.json', '/status.js']) {
    const res = await get(path, { host: 'attacker.example', authorization: `Bearer ${TOKEN}` });
    assert.is(res.status, 421, `${path} with a rebinding Host`);
  }
  assert.is((await get('/status.json', { host: `localhost:${service.admin!.port}`, authorization: `Bearer ${TOKEN}` })).status, 200, 'localhost names a loopback listener');
  assert.is((await get('/metrics')).status, 200);
  assert.is((await get('/metrics', { host: 'attacker.example' })).status, 200);
  assert.is((await get('/healthz')).status, 200);
  assert.is((await get('/nothing-here')).status, 404);
});

test('login sets an HttpOnly SameSite=Strict cookie that opens the data; a wrong token does not', async () => {
  const origin = { origin: base, 'content-type': 'application/x-www-form-urlencoded' };
  const wrong = await post('/login', origin, 'token=not-the-token-at-all');
  assert.is(wrong.status, 401);
  assert.is(wrong.headers['set-cookie'], undefined);
  const crossSite = await post('/login', { ...origin, origin: 'http://attacker.example' }, `token=${TOKEN}`);
  assert.is(crossSite.status, 403, 'login from another origin');
  const ok = await post('/login', origin, `token=${encodeURIComponent(TOKEN)}`);
  assert.is(ok.status, 204);
  const cookie = String(ok.headers['set-cookie']);
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  assert.not.ok(cookie.includes(TOKEN), 'the cookie holds no token');
  const pair = cookie.split(';')[0]!;
  assert.is((await get('/status.json', { cookie: pair })).status, 200);
  assert.is((await get('/', { cookie: pair })).status, 200);
});

test('cross-site POSTs are refused; a Bearer POST disconnects a real session, which sees 421 and the close', async () => {
  const login = await post('/login', { origin: base, 'content-type': 'application/x-www-form-urlencoded' }, `token=${TOKEN}`);
  const cookie = String(login.headers['set-cookie']).split(';')[0]!;
  const { csrf } = JSON.parse((await get('/status.json', { cookie })).text) as { csrf: string };

  // A real FTP session, logged in and idle.
  const socket = connect(service.port, '127.0.0.1');
  socket.setEncoding('utf8');
  let seen = '';
  socket.on('data', (d: string) => (seen += d));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const until = async (code: string): Promise<void> => {
    while (!(seen.includes(`\r\n${code} `) || seen.startsWith(`${code} `))) await new Promise((resolve) => setTimeout(resolve, 20));
  };
  await until('220');
  socket.write(`USER ${service.createdUser!.name}\r\nPASS ${service.createdUser!.password}\r\n`);
  await until('230');
  // One snapshot answers every refresh for 250 ms (README), so the login shows within that, not at once.
  const sessionsWhen = async (ready: (sessions: Array<{ id: string; user: string; lastCommand: string }>) => boolean): Promise<Array<{ id: string; user: string; lastCommand: string }>> => {
    for (const deadline = Date.now() + 5000; ; await new Promise((resolve) => setTimeout(resolve, 50))) {
      const { sessions } = JSON.parse((await get('/status.json', { authorization: `Bearer ${TOKEN}` })).text) as { sessions: Array<{ id: string; user: string; lastCommand: string }> };
      if (ready(sessions) || Date.now() > deadline) return sessions;
    }
  };
  const listed = await sessionsWhen((sessions) => sessions.some((s) => s.user === service.createdUser!.name));
  const mine = listed.find((s) => s.user === service.createdUser!.name)!;
  assert.ok(mine, 'the session is listed');
  assert.is(mine.lastCommand, 'PASS ****');
  const path = `/sessions/${mine.id}/disconnect`;

  assert.is((await post(path)).status, 401, 'no token');
  assert.is((await post(path, { cookie, origin: 'http://attacker.example', 'x-dropftp-csrf': csrf })).status, 403, 'another Origin');
  assert.is((await post(path, { cookie, origin: base, 'sec-fetch-site': 'cross-site', 'x-dropftp-csrf': csrf })).status, 403, 'Sec-Fetch-Site cross-site');
  assert.is((await post(path, { cookie, origin: base })).status, 403, 'a cookie alone (what a cross-site form sends) lacks the CSRF header');
  assert.is((await post(path, { cookie, origin: base, 'x-dropftp-csrf': 'guessed' })).status, 403, 'a wrong CSRF value');
  assert.is((await post(path, { host: 'attacker.example', authorization: `Bearer ${TOKEN}` })).status, 421, 'a foreign Host');
  assert.is((await get(path, { authorization: `Bearer ${TOKEN}` })).status, 405, 'GET is not an action');
  assert.not.ok(socket.destroyed, 'none of the refused requests touched the session');

  assert.is((await post('/sessions/no-such-session/disconnect', { authorization: `Bearer ${TOKEN}` })).status, 404);
  const done = await post(path, { authorization: `Bearer ${TOKEN}` });
  assert.is(done.status, 200);
  await closed;
  assert.match(seen, /\r\n421 /);
  const after = await sessionsWhen((sessions) => !sessions.some((s) => s.id === mine.id));
  assert.not.ok(after.some((s) => s.id === mine.id), 'the session left the list');
});

test('the rules: non-loopback needs a token; tokens never from flags; token files private', () => {
  assert.ok(isLoopback('127.0.0.1') && isLoopback('127.0.0.2') && isLoopback('::1') && isLoopback('localhost') && isLoopback('::ffff:127.0.0.1'));
  assert.not.ok(isLoopback('0.0.0.0') || isLoopback('10.1.2.3') || isLoopback('::') || isLoopback('128.0.0.1'));
  assert.is(hostName('Example.COM:8080'), 'example.com');
  assert.is(hostName('[::1]:9121'), '::1');
  assert.is(hostName('a b'), null);

  const open = new AdminAccess('10.1.2.3', { env: {} });
  assert.ok(open.tokenRequired);
  assert.not.ok(open.enabled, 'no token on a public address: no status page');
  const fake = { headers: { host: '10.1.2.3:9121' } } as never;
  const refused = open.authenticate(fake);
  assert.is(refused.ok ? 0 : refused.status, 503);
  const guarded = new AdminAccess('10.1.2.3', { env: { DROPFTP_ADMIN_TOKEN: TOKEN } });
  assert.ok(guarded.enabled && guarded.tokenRequired);
  const noToken = guarded.authenticate(fake);
  assert.is(noToken.ok ? 0 : noToken.status, 401);
  assert.ok(guarded.authenticate({ headers: { host: '10.1.2.3', authorization: `Bearer ${TOKEN}` } } as never).ok);
  assert.ok(guarded.hostAllowed(fake));
  assert.not.ok(guarded.hostAllowed({ headers: { host: 'localhost:9121' } } as never), 'loopback names do not name a public listener');
  const wildcard = new AdminAccess('0.0.0.0', { env: { DROPFTP_ADMIN_TOKEN: TOKEN }, hosts: ['ftp.example.net'] });
  assert.ok(wildcard.hostAllowed({ headers: { host: 'ftp.example.net:9121' } } as never));
  assert.not.ok(wildcard.hostAllowed({ headers: { host: '0.0.0.0:9121' } } as never));
  assert.throws(() => new AdminAccess('127.0.0.1', { env: {}, requireToken: true }), /requireToken: needs a token/);
  assert.throws(() => loadToken({ token: 'short' }), /at least 16/);

  const tmp = mkdtempSync(join(tmpdir(), 'dropftp-status-token-'));
  try {
    const file = join(tmp, 'token');
    writeFileSync(file, `${TOKEN}\n`, { mode: 0o644 });
    chmodSync(file, 0o644);
    assert.throws(() => loadToken({ tokenFile: file, env: {} }), /readable by group or others/);
    chmodSync(file, 0o600);
    assert.is(loadToken({ tokenFile: file, env: {} }), TOKEN);
    assert.is(loadToken({ tokenFile: file, env: { DROPFTP_ADMIN_TOKEN: 'from-env-0123456789' } }), 'from-env-0123456789', 'the environment wins');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }

  // Configuration: --admin still names the listener; the token variable is accepted; no token flag exists.
  const loaded = loadConfig({ argv: ['--admin', '127.0.0.1:9121', '--admin-hosts', 'a.example,b.example'], env: { DROPFTP_ADMIN_TOKEN: TOKEN }, file: null });
  assert.equal(loaded.config.admin.listen, { host: '127.0.0.1', port: 9121 });
  assert.equal(loaded.config.admin.hosts, ['a.example', 'b.example']);
  assert.throws(() => loadConfig({ argv: ['--admin-token', TOKEN], env: {}, file: null }), (err: unknown) => err instanceof ConfigError && /--admin-token: unknown flag/.test(err.message));
});

test.run();
