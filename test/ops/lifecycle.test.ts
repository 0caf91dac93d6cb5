// Lifecycle of the real `dropftp serve` process: SIGHUP reloads the users file while sessions stay;
// logs carry one line per session event and per transfer (bytes, duration, result) and never a
// password; SIGTERM during 50 uploads refuses new connections and transfers, lets the running ones
// finish within the grace period, aborts the rest, and exits 0 — afterwards the local box (reopened
// on the same data dir, checked over its HTTP API) holds exactly the uploads that got their 226,
// byte-exact, and nothing of the others.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalBox } from '../../src/localbox/index.ts';
import { RawFtp, openData, upload, type Reply } from '../ftp/helpers/raw-client.ts';
import { BoxView } from '../reliability/helpers.ts';
import { BIN, cleanEnv, startServe, waitFor, type ServeProcess } from './lifecycle-helpers.ts';

const KiB = 1024;
const UPLOADS = 50;
const GRACE_MS = 2500;

let root: string;
const running = new Set<ServeProcess>();

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dropftp-lifecycle-'));
});
test.after(async () => {
  for (const serve of running) serve.child.kill('SIGKILL');
  await rm(root, { recursive: true, force: true });
});

function bytesOf(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed * 2654435761 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function addUser(dataDir: string, name: string, password: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [BIN, 'user', 'add', name, '--password-stdin', '--data-dir', dataDir], { env: cleanEnv() }, (err, _out, stderr) =>
      err ? reject(new Error(`user add: ${stderr || err.message}`)) : resolve(),
    );
    child.stdin!.end(`${password}\n`);
  });
}

async function serve(dataDir: string, extra: string[] = ['--limits-max-connections-per-address', '200']): Promise<ServeProcess> {
  const s = await startServe(['--data-dir', dataDir, '--listen', '127.0.0.1:0', '--grace', String(GRACE_MS), '--engine-workers', '2', ...extra], { DROPFTP_LOG_FORMAT: 'json' });
  running.add(s);
  void s.exited.then(() => running.delete(s));
  return s;
}

test('SIGHUP reloads users and limits while a session stays; logs have transfer lines and no password', async () => {
  const dataDir = join(root, 'hup');
  const config = join(root, 'hup.yaml');
  await writeFile(config, 'limits:\n  maxConnectionsPerAddress: 200\n');
  const s = await serve(dataDir, ['--config', config]);
  const a = await RawFtp.connect(s.port);
  await a.login(s.user, s.password);
  const first = bytesOf(300 * KiB + 7, 1);
  assert.is((await upload(a, 'STOR /before.bin', first)).final.code, 226);

  const bobPassword = 'b0b-Secret-pass-' + Date.now();
  await addUser(dataDir, 'bob', bobPassword);
  await writeFile(config, 'limits:\n  maxConnectionsPerAddress: 200\n  maxConnectionsPerUser: 1\n');
  s.child.kill('SIGHUP');
  const reload = await waitFor(() => s.records().find((r) => r.event === 'reload'), 10_000, 'reload line');
  assert.is(reload.users, 2, JSON.stringify(reload));
  assert.equal(reload.applied, ['users', 'limits.maxConnectionsPerUser'], JSON.stringify(reload));
  assert.equal(reload.needsRestart, []);
  // The new per-user cap: a second session of the first user is refused; its first one stays.
  const again = await RawFtp.connect(s.port);
  await again.cmd(`USER ${s.user}`);
  const refusedLogin = await again.cmd(`PASS ${s.password}`, 15_000);
  assert.ok(refusedLogin.code !== 230, `second session of ${s.user} logged in after the cap of 1`);
  again.close();

  const b = await RawFtp.connect(s.port);
  await b.login('bob', bobPassword);
  const wrong = await RawFtp.connect(s.port);
  await wrong.cmd('USER bob');
  assert.is((await wrong.cmd('PASS not-' + bobPassword, 15_000)).code, 530);
  wrong.close();
  // The session from before the reload still works.
  const second = bytesOf(64 * KiB, 2);
  assert.is((await upload(a, 'STOR /after.bin', second)).final.code, 226);
  assert.is((await a.cmd('NOOP')).code, 200);
  a.close();
  b.close();

  const transfers = await waitFor(() => {
    const lines = s.records().filter((r) => r.event === 'transfer');
    return lines.length >= 2 && lines;
  }, 5000, 'transfer lines');
  const before = transfers.find((r) => r.path === '/before.bin')!;
  assert.ok(before, JSON.stringify(transfers));
  assert.equal(
    { user: before.user, client: before.client, direction: before.direction, bytes: before.bytes, result: before.result, ftpCode: before.ftpCode },
    { user: s.user, client: '127.0.0.1', direction: 'upload', bytes: first.length, result: 'ok', ftpCode: 226 },
  );
  assert.ok(typeof before.durationMs === 'number' && before.durationMs >= 0);
  await waitFor(() => s.records().filter((r) => r.event === 'disconnect').length >= 4, 5000, 'disconnect lines');
  const events = new Set(s.records().map((r) => r.event));
  for (const event of ['start', 'connect', 'login', 'transfer', 'disconnect', 'reload', 'refused']) assert.ok(events.has(event), `no ${event} line`);
  assert.ok(s.records().some((r) => r.event === 'login' && r.user === 'bob' && r.result === 'DROPFTP_ERR_LOGIN_FAILED'));
  // No password anywhere in the logs (the first-run banner line is not a log record).
  const logs = s.stdout().split('\n').filter((line) => line.startsWith('{')).join('\n');
  for (const secret of [s.password, bobPassword, 'not-' + bobPassword]) assert.not.ok(logs.includes(secret), `password ${secret} logged`);

  s.child.kill('SIGTERM');
  assert.equal(await s.exited, { code: 0, signal: null });
});

interface Upload {
  path: string;
  bytes: Buffer;
  fast: boolean;
  client: RawFtp;
  data: import('node:net').Socket;
  final: Promise<Reply | null>;
}

test('SIGTERM during 50 uploads: the running ones finish, the rest abort, nothing partial, exit 0', async () => {
  const dataDir = join(root, 'term');
  const s = await serve(dataDir);
  const uploads: Upload[] = [];
  await Promise.all(
    Array.from({ length: UPLOADS }, async (_, i) => {
      const client = await RawFtp.connect(s.port);
      await client.login(s.user, s.password);
      const { port } = await client.pasv();
      const data = await openData(port);
      data.on('error', () => {});
      const path = `/up/file-${i}.bin`;
      client.send(`STOR ${path}`);
      const first = await client.read(10_000);
      assert.is(first.code, 150, first.text);
      const bytes = bytesOf(192 * KiB + i * 512, i + 10);
      // Half of every upload goes now; fast ones send the rest after SIGTERM, slow ones never do.
      data.write(bytes.subarray(0, bytes.length >> 1));
      uploads.push({ path, bytes, fast: i % 2 === 0, client, data, final: client.readOrNull(GRACE_MS + 15_000) });
    }),
  );
  const idle = await RawFtp.connect(s.port);
  await idle.login(s.user, s.password);
  await waitFor(() => s.records().filter((r) => r.event === 'login' && r.result === 'ok').length >= UPLOADS + 1, 5000, 'logins');

  const signalledAt = Date.now();
  s.child.kill('SIGTERM');
  await waitFor(() => s.records().find((r) => r.event === 'shutdown'), 5000, 'shutdown line');
  for (const u of uploads) if (u.fast) u.data.end(u.bytes.subarray(u.bytes.length >> 1));

  // No new connection; no new transfer on an existing session (421).
  const refused = await new Promise<boolean>((resolve) => {
    const probe = connect({ port: s.port, host: '127.0.0.1' });
    probe.once('connect', () => (probe.destroy(), resolve(false)));
    probe.once('error', () => resolve(true));
  });
  assert.ok(refused, 'a new connection was accepted after SIGTERM');
  const late = await idle.cmd('STOR /up/late.bin');
  assert.is(late.code, 421, late.text);

  const finals = await Promise.all(uploads.map((u) => u.final));
  const exit = await s.exited;
  const tookMs = Date.now() - signalledAt;
  assert.equal(exit, { code: 0, signal: null }, s.stderr());
  assert.ok(tookMs >= GRACE_MS - 100, `exited after ${tookMs} ms, before the grace period`);
  assert.ok(tookMs < GRACE_MS + 10_000, `exited after ${tookMs} ms`);
  for (const u of uploads) u.client.close();
  idle.close();

  const ok = uploads.filter((_, i) => finals[i]?.code === 226);
  // Every upload that could finish within the grace period did; none of the stalled ones did.
  assert.is(ok.length, UPLOADS / 2, finals.map((f) => f?.code ?? 'closed').join(','));
  assert.ok(ok.every((u) => u.fast));

  const box = await startLocalBox({ dataDir: join(dataDir, 'localbox') }, { gcIntervalMs: 0 });
  try {
    const view = await BoxView.open(box.url, dataDir);
    const files = await view.listFiles();
    for (const u of uploads) {
      const stored = await view.download(u.path);
      if (u.fast) {
        assert.ok(stored, `${u.path} (226) missing`);
        assert.is(sha(stored!), sha(u.bytes), `${u.path} not byte-exact`);
      } else {
        assert.is(stored, null, `${u.path} was aborted but something was committed`);
      }
    }
    assert.is(files.size, UPLOADS / 2, [...files.keys()].join(' '));
  } finally {
    await box.close();
  }
  const lines = s.records().filter((r) => r.event === 'transfer');
  assert.is(lines.filter((r) => r.result === 'ok').length, UPLOADS / 2);
  assert.is(lines.filter((r) => r.result !== 'ok' && String(r.path).startsWith('/up/file-')).length, UPLOADS / 2);
  const stopped = s.records().find((r) => r.event === 'stopped');
  assert.is(stopped?.aborted, UPLOADS / 2, JSON.stringify(stopped));
});

test('a second SIGTERM aborts at once: exit 0 long before the grace period, nothing committed', async () => {
  const dataDir = join(root, 'twice');
  const s = await serve(dataDir, ['--grace', '60s']);
  const c = await RawFtp.connect(s.port);
  await c.login(s.user, s.password);
  const { port } = await c.pasv();
  const data = await openData(port);
  data.on('error', () => {});
  c.send('STOR /stuck.bin');
  assert.is((await c.read(10_000)).code, 150);
  data.write(bytesOf(100 * KiB, 3));
  const final = c.readOrNull(20_000);
  const signalledAt = Date.now();
  s.child.kill('SIGTERM');
  await waitFor(() => s.records().find((r) => r.event === 'shutdown'), 5000, 'shutdown line');
  s.child.kill('SIGTERM');
  assert.equal(await s.exited, { code: 0, signal: null }, s.stderr());
  assert.ok(Date.now() - signalledAt < 15_000, `took ${Date.now() - signalledAt} ms with a 60 s grace period`);
  assert.ok((await final)?.code !== 226);
  c.close();
  data.destroy();
  const box = await startLocalBox({ dataDir: join(dataDir, 'localbox') }, { gcIntervalMs: 0 });
  try {
    const view = await BoxView.open(box.url, dataDir);
    assert.is(await view.download('/stuck.bin'), null);
  } finally {
    await box.close();
  }
});

test.run();
