// `dropftp localbox` flags of issue 15 (--help/-h, --rate-limit, --write-lock) on the real command,
// and the `localbox.rateLimit` / `localbox.writeLock` configuration keys of `dropftp serve`.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../src/config/load.ts';
import { toDropftpOptions } from '../../src/config/to-options.ts';
import { silentLog } from '../../src/log/logger.ts';

const BIN = new URL('../../bin/dropftp.mjs', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'localbox-cli-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[], untilLine = false): Promise<{ code: number | null; out: string; err: string; kill?: () => Promise<number | null> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'localbox', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      if (untilLine && out.includes('\n')) {
        resolve({ code: null, out, err, kill: () => (child.kill('SIGTERM'), exited) });
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.once('error', reject);
    void exited.then((code) => resolve({ code, out, err }));
  });
}

test('--help and -h print the usage and exit 0', async () => {
  for (const flag of ['--help', '-h']) {
    const r = await run([flag]);
    assert.is(r.code, 0, flag);
    assert.match(r.out, /usage:/);
    assert.match(r.out, /--rate-limit RATE\[:BURST\]/);
    assert.match(r.out, /--write-lock\[=HOLD_MS\]/);
  }
});

test('a malformed --rate-limit or --write-lock is refused at start, naming the flag', async () => {
  for (const [args, flag] of [
    [['--rate-limit', 'fast'], '--rate-limit'],
    [['--rate-limit', '0'], '--rate-limit'],
    [['--write-lock=999999'], '--write-lock'],
  ] as const) {
    const r = await run([...args, '--data-dir', join(dir, 'bad')]);
    assert.is.not(r.code, 0, args.join(' '));
    assert.ok(r.err.includes(`${flag}:`), r.err);
  }
});

test('--rate-limit 12:12 --write-lock=200 start a box with those limits; --write-lock alone holds 50 ms', async () => {
  for (const [args, want] of [
    [['--rate-limit', '12:12', '--write-lock=200'], { rateLimit: { rate: 12, burst: 12 }, writeLock: { holdMs: 200 } }],
    [['--write-lock', '--rate-limit', '0.5'], { rateLimit: { rate: 0.5, burst: 1 }, writeLock: { holdMs: 50 } }],
  ] as const) {
    const r = await run(['--listen', '127.0.0.1:0', '--data-dir', join(dir, 'ok'), ...args], true);
    try {
      const { url, adminToken } = JSON.parse(r.out.split('\n')[0]!) as { url: string; adminToken: string };
      const res = await fetch(`${url}/admin/limits`, { headers: { Authorization: `Bearer ${adminToken}` } });
      assert.equal(await res.json(), want);
    } finally {
      assert.is(await r.kill!(), 0);
    }
  }
});

test('localbox.rateLimit / localbox.writeLock: parsed from env and flags, mapped for serve, bad values name the key', () => {
  const { config } = loadConfig({ argv: ['--localbox-write-lock', '200'], env: { DROPFTP_LOCALBOX_RATE_LIMIT: '12:12' } });
  assert.equal(config.localbox, { rateLimit: { rate: 12, burst: 12 }, writeLock: 200 });
  assert.equal(toDropftpOptions(config, silentLog()).localbox, { limits: { rateLimit: { rate: 12, burst: 12 }, writeLock: 200 } });
  assert.equal(loadConfig({ argv: [], env: {} }).config.localbox, { rateLimit: null, writeLock: null });
  for (const input of [{ argv: [], env: { DROPFTP_LOCALBOX_RATE_LIMIT: 'fast' } }, { argv: ['--localbox-rate-limit', '1:0'], env: {} }, { argv: ['--localbox-write-lock', '-3'], env: {} }]) {
    try {
      loadConfig(input);
      assert.unreachable(JSON.stringify(input));
    } catch (err) {
      if (err instanceof assert.Assertion) throw err;
      assert.match((err as Error).message, /localbox\.(rateLimit|writeLock)/);
    }
  }
});

test.run();
