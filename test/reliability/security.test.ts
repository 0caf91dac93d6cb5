// Security review, in tests, against a real `dropftp serve` child: failed logins are slowed and then
// banned per address (others still get in); credentials files are mode 0600; no secret (the user's
// password, wrong passwords tried, refresh and access tokens, app secrets) appears in any log line
// or FTP reply, with the log at trace level. Jail escapes and per-verb permissions: test/users.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { parse } from 'yaml';
import { RawFtp, download, upload, type Reply } from '../ftp/helpers/raw-client.ts';
import { pattern, rawFtpFrom, sha256 } from './helpers.ts';

const BIN = fileURLToPath(new URL('../../bin/dropftp.mjs', import.meta.url));
const PASSWORD = `Sec-${Date.now().toString(36)}-correct-horse`;
const WRONG = [`wrong-${Date.now().toString(36)}-battery`, `${PASSWORD.slice(0, -1)}X`, 'hunter2-staple'];
const DELAY_BASE_MS = 150;
const DELAY_MAX_MS = 600;
const BAN_AFTER = 4;

let dataDir: string;
let child: ChildProcess;
let port = 0;
const output: string[] = [];
const replies: string[] = [];

test.before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'dropftp-security-'));
  // The user exists before the first start, so serve never prints a password: any occurrence is a leak.
  const add = spawnSync(process.execPath, [BIN, 'user', 'add', 'alice', '--password-stdin', '--data-dir', dataDir], { input: `${PASSWORD}\n`, encoding: 'utf8' });
  assert.is(add.status, 0, add.stderr);
  output.push(add.stdout, add.stderr);
  child = spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--engine-workers', '1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      DROPFTP_LOG_LEVEL: 'trace',
      DROPFTP_LOG_FORMAT: 'json',
      DROPFTP_LIMITS_LOGIN_DELAY_BASE_MS: String(DELAY_BASE_MS),
      DROPFTP_LIMITS_LOGIN_DELAY_MAX_MS: String(DELAY_MAX_MS),
      DROPFTP_LIMITS_BAN_AFTER_FAILURES: String(BAN_AFTER),
    },
  });
  child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
  port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dropftp serve did not start: ${output.join('')}`)), 30_000);
    child.once('exit', (code) => reject(new Error(`dropftp serve exited ${code}: ${output.join('')}`)));
    child.stdout!.on('data', (d: Buffer) => {
      output.push(d.toString());
      const m = /listening on ftp:\/\/127\.0\.0\.1:(\d+)/.exec(output.join(''));
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
  child.removeAllListeners('exit');
});

test.after(async () => {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await rm(dataDir, { recursive: true, force: true });
});

async function connectFrom(localAddress: string): Promise<RawFtp | null> {
  const { client, greeting } = await rawFtpFrom(port, localAddress);
  replies.push(greeting);
  return client;
}

async function timedLogin(c: RawFtp, user: string, password: string): Promise<{ reply: Reply | null; ms: number }> {
  const r1 = await c.cmd(`USER ${user}`);
  replies.push(r1.text);
  const start = Date.now();
  c.send(`PASS ${password}`);
  const reply = await c.readOrNull(DELAY_MAX_MS * 4 + 5000);
  if (reply) replies.push(reply.text);
  return { reply, ms: Date.now() - start };
}

test('credentials files are mode 0600 (accounts.yaml, users.yaml)', () => {
  for (const name of ['accounts.yaml', 'users.yaml']) {
    const mode = statSync(join(dataDir, name)).mode & 0o777;
    assert.is(mode & 0o077, 0, `${name} is mode ${mode.toString(8)}: readable by others`);
  }
});

// Regression: the local box's SQLite database holds every refresh token, access token and app
// secret in clear; it was created 0644 in a 0755 directory. The directory is now 0700.
test('the local box database (tokens, app secrets) is not readable by others', () => {
  const dirMode = statSync(join(dataDir, 'localbox')).mode & 0o777;
  if ((dirMode & 0o077) === 0) return; // a closed directory protects whatever is in it
  for (const name of ['localbox.sqlite', 'localbox.sqlite-wal', 'localbox.sqlite-shm']) {
    const mode = statSync(join(dataDir, 'localbox', name)).mode & 0o777;
    assert.is(mode & 0o077, 0, `localbox/${name} is mode ${mode.toString(8)} in a directory of mode ${dirMode.toString(8)}`);
  }
});

test('failed logins are slowed per address, then the address is banned; other addresses still log in', async () => {
  const attacker = '127.0.0.5';
  const times: number[] = [];
  for (let i = 0; i < BAN_AFTER; i++) {
    // A fresh connection each time: the per-connection cap (3 failures, then 421) must not hide the
    // per-address delay and ban.
    const c = await connectFrom(attacker);
    assert.ok(c, `attempt ${i}: refused before the ban`);
    const { reply, ms } = await timedLogin(c!, i % 2 ? 'alice' : 'mallory', WRONG[i % WRONG.length]!);
    assert.ok(reply && (reply.code === 530 || reply.code === 421), `attempt ${i}: ${reply?.text ?? 'no reply'}`);
    times.push(ms);
    c!.close();
  }
  // Each failure is answered no sooner than its delay: base, doubling, capped.
  times.forEach((ms, i) => {
    const floor = Math.min(DELAY_BASE_MS * 2 ** i, DELAY_MAX_MS);
    assert.ok(ms >= floor * 0.9, `failure ${i + 1} answered after ${ms} ms, expected ≥ ${floor} ms (all: ${times.join(', ')})`);
  });
  // Banned now, even with the right password.
  const after = await connectFrom(attacker);
  if (after) {
    const { reply } = await timedLogin(after, 'alice', PASSWORD);
    assert.ok(reply?.code !== 230, `a banned address logged in: ${reply?.text}`);
    after.close();
  }
  // The ban is per address: the real user elsewhere is not locked out.
  const good = await connectFrom('127.0.0.1');
  assert.ok(good, 'another address was refused');
  const { reply } = await timedLogin(good!, 'alice', PASSWORD);
  assert.is(reply?.code, 230, reply?.text);
  good!.close();
});

test('no secret in any log line or FTP reply (trace-level log, logins, failed logins, transfers)', async () => {
  const c = await connectFrom('127.0.0.1');
  assert.ok(c);
  const login = await timedLogin(c!, 'alice', PASSWORD);
  assert.is(login.reply?.code, 230);
  const bytes = pattern(300 * 1024, 5);
  const steps: Array<() => Promise<Reply | { first: Reply; final: Reply }>> = [
    () => c!.cmd('MKD /sec'),
    () => upload(c!, 'STOR /sec/a.bin', bytes),
    () => c!.cmd('RNFR /sec/a.bin'),
    () => c!.cmd('RNTO /sec/b.bin'),
    () => c!.cmd('SIZE /sec/b.bin'),
    () => c!.cmd('STAT'),
    () => c!.cmd('SYST'),
    () => c!.cmd('FEAT'),
  ];
  for (const step of steps) {
    const r = await step();
    replies.push('text' in r ? r.text : `${r.first.text}\n${r.final.text}`);
  }
  const got = await download(c!, 'RETR /sec/b.bin');
  replies.push(got.first.text, got.final.text);
  assert.is(sha256(got.data), sha256(bytes));
  const listing = await download(c!, 'LIST /sec');
  replies.push(listing.first.text, listing.final.text, listing.data.toString());
  c!.close();
  // A failed login from a fresh address (the ban test's address is banned).
  const d = await connectFrom('127.0.0.6');
  assert.ok(d);
  await timedLogin(d!, 'alice', WRONG[0]!);
  d!.close();
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));

  const accounts = parse(await readFile(join(dataDir, 'accounts.yaml'), 'utf8')) as Record<string, { refreshToken: string; appSecret: string }>;
  const db = new Database(join(dataDir, 'localbox', 'localbox.sqlite'), { readonly: true });
  const tokens = (db.prepare('SELECT token, kind FROM tokens').all() as Array<{ token: string; kind: string }>);
  db.close();
  const secrets: Array<[string, string]> = [
    ['the password', PASSWORD],
    ...WRONG.map((w, i): [string, string] => [`wrong password #${i}`, w]),
    ...Object.entries(accounts).flatMap(([name, a]): Array<[string, string]> => [[`${name} refresh token`, a.refreshToken], [`${name} app secret`, a.appSecret]]),
    ...tokens.map((t): [string, string] => [`${t.kind} token`, t.token]),
  ];
  assert.ok(tokens.some((t) => t.kind === 'access'), 'no access token found in the box: the check would be vacuous');
  const logs = output.join('');
  assert.ok(/"event":"login"|login/i.test(logs), `the log shows no login at all, so the check would be vacuous:\n${logs.slice(0, 2000)}`);
  const where = [['log', logs], ['FTP replies', replies.join('\n')]] as const;
  const leaks = secrets.flatMap(([label, secret]) => where.filter(([, text]) => text.includes(secret)).map(([place]) => `${label} in the ${place}`));
  assert.equal(leaks, []);
});

test.run();
