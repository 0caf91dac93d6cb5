// Engine options and their config keys: the pacer and spool options reach the engine from file, env
// and flags; an unset spool limit is a quarter of the spool folder's free space (a real engine
// started on a temp folder reports it); the removed ones (engine.maxRequestsPerAccount, fairRoundMs,
// fairRoundBytes, minSliceBytes) are refused from every source with a message naming what replaced
// them. Main thread.

import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../src/config/load.ts';
import { toDropftpOptions } from '../../src/config/to-options.ts';
import { createLogger } from '../../src/log/logger.ts';
import { DropftpError } from '../../src/errors.ts';
import { TransferEngine } from '../../src/transfer/index.ts';
import { AUTO_SPOOL_MAX_BYTES, ENGINE_DEFAULTS, autoSpoolBytes, resolveEngineOptions } from '../../src/transfer/options.ts';

const problemsOf = (run: () => unknown): string => {
  try {
    run();
  } catch (err) {
    return (err as Error).message;
  }
  return '';
};

test('the removed engine keys are refused from file, env and flag, naming their replacement', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dropftp-opt-'));
  try {
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'engine:\n  maxRequestsPerAccount: 16\n  fairRoundMs: 600\n');
    const fromFile = problemsOf(() => loadConfig({ argv: ['--config', file], env: {} }));
    assert.match(fromFile, 'engine.maxRequestsPerAccount was removed: calls are paced per account, see engine.maxCallsPerSecond');
    assert.match(fromFile, 'engine.fairRoundMs was removed');
    const fromEnv = problemsOf(() => loadConfig({ argv: [], env: { DROPFTP_ENGINE_MAX_REQUESTS_PER_ACCOUNT: '4', DROPFTP_ENGINE_MIN_SLICE_BYTES: '1' } }));
    assert.match(fromEnv, 'DROPFTP_ENGINE_MAX_REQUESTS_PER_ACCOUNT: engine.maxRequestsPerAccount was removed: calls are paced per account, see engine.maxCallsPerSecond');
    assert.match(fromEnv, 'engine.minSliceBytes was removed');
    const fromFlag = problemsOf(() => loadConfig({ argv: ['--engine-max-requests-per-account', '4', '--engine-fair-round-bytes=1'], env: {} }));
    assert.match(fromFlag, '--engine-max-requests-per-account: engine.maxRequestsPerAccount was removed');
    assert.match(fromFlag, 'engine.fairRoundBytes was removed');
    for (const key of ['maxRequestsPerAccount', 'fairRoundMs', 'fairRoundBytes', 'minSliceBytes']) {
      const err = problemsOf(() => resolveEngineOptions({ [key]: 1 } as never));
      assert.match(err, `engine.${key} was removed`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('engine.maxCallsPerSecond, maxRetryAfterSec, appendMemoryBytes, spoolBytes reach the engine options', () => {
  const { config } = loadConfig({
    argv: ['--engine-max-calls-per-second', '12', '--engine-spool-bytes', '1GiB'],
    env: { DROPFTP_ENGINE_MAX_RETRY_AFTER_SEC: '60', DROPFTP_ENGINE_APPEND_MEMORY_BYTES: '4MiB', DROPFTP_DATA_DIR: '/srv/dropftp' },
  });
  const engine = toDropftpOptions(config, createLogger({ level: 'silent', format: 'json' })).engine!;
  assert.is(engine.maxCallsPerSecond, 12);
  assert.is(engine.maxRetryAfterSec, 60);
  assert.is(engine.appendMemoryBytes, 4 * 1024 * 1024);
  assert.is(engine.spoolBytes, 1024 ** 3);
  assert.is(engine.spoolDir, join('/srv/dropftp', 'spool'));
  const resolved = resolveEngineOptions({ ...engine, log: null });
  assert.is(resolved.maxCallsPerSecond, 12);
  const defaults = loadConfig({ argv: [], env: {} }).config.engine;
  assert.is(defaults.maxCallsPerSecond, null);
  assert.is(defaults.maxRetryAfterSec, 300);
  // The server's default (the config schema) is the engine's own: a lone upload of up to 64 MiB stays in memory.
  assert.is(defaults.appendMemoryBytes, ENGINE_DEFAULTS.appendMemoryBytes);
  assert.throws(() => resolveEngineOptions({ maxCallsPerSecond: -1 }), (e: unknown) => e instanceof DropftpError && /maxCallsPerSecond/.test(e.message));
  assert.is(defaults.spoolBytes, null, 'no spool limit set: sized at start');
  assert.is(toDropftpOptions(loadConfig({ argv: ['--engine-spool-bytes', '0'], env: {} }).config, createLogger({ level: 'silent', format: 'json' })).engine!.spoolBytes, 0);
  assert.throws(() => loadConfig({ argv: ['--engine-spool-bytes', 'lots'], env: {} }), /engine-spool-bytes/);
  assert.throws(() => resolveEngineOptions({ spoolBytes: -1 }), (e: unknown) => e instanceof DropftpError && /spoolBytes/.test(e.message));
  // engine.uploadLeadSec: default 20, from a flag, bad values refused with the option named.
  assert.is(defaults.uploadLeadSec, 20);
  assert.is(toDropftpOptions(loadConfig({ argv: ['--engine-upload-lead-sec', '8'], env: {} }).config, createLogger({ level: 'silent', format: 'json' })).engine!.uploadLeadSec, 8);
  assert.throws(() => loadConfig({ argv: ['--engine-upload-lead-sec', '0'], env: {} }), /engine-upload-lead-sec/);
  assert.throws(() => loadConfig({ argv: [], env: { DROPFTP_ENGINE_UPLOAD_LEAD_SEC: 'soon' } }), /DROPFTP_ENGINE_UPLOAD_LEAD_SEC/);
  assert.throws(() => resolveEngineOptions({ uploadLeadSec: 0 }), (e: unknown) => e instanceof DropftpError && /uploadLeadSec/.test(e.message));
});

test('the automatic spool limit: a quarter of the free space, whole MiB, at most 64 GiB', () => {
  const MiB = 1024 ** 2;
  assert.is(autoSpoolBytes(0), 0);
  assert.is(autoSpoolBytes(-5), 0);
  assert.is(autoSpoolBytes(1024 * MiB), 256 * MiB);
  assert.is(autoSpoolBytes(10 * MiB + 3), 2 * MiB);
  assert.is(autoSpoolBytes(80 * 1024 ** 3), 20 * 1024 ** 3);
  assert.is(autoSpoolBytes(1024 ** 4), AUTO_SPOOL_MAX_BYTES);
  assert.is(AUTO_SPOOL_MAX_BYTES, 64 * 1024 ** 3);
});

test('an engine started without a spool limit takes a quarter of the free space of its spool folder; an explicit one is kept', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dropftp-spool-size-'));
  try {
    const seen: object[] = [];
    const log = { info: (obj: object) => void seen.push(obj), warn: () => {} };
    const engine = await TransferEngine.start({ onlyMainThread: true, spoolDir: join(dir, 'spool'), log });
    try {
      const fs = statfsSync(join(dir, 'spool'));
      const expected = autoSpoolBytes(fs.bavail * fs.bsize);
      const limit = engine.stats().spool.limitBytes;
      // The free space moves a little between the engine's reading and this one (other writers).
      assert.ok(Math.abs(limit - expected) <= 64 * 1024 ** 2, `limit ${limit} vs a quarter of the free space ${expected}`);
      assert.ok(limit <= AUTO_SPOOL_MAX_BYTES);
      assert.is(engine.options.spoolBytes, limit);
      assert.ok(seen.some((o) => (o as { event?: string }).event === 'spool-size'), 'the size it chose is logged');
    } finally {
      await engine.close();
    }
    const fixed = await TransferEngine.start({ onlyMainThread: true, spoolDir: join(dir, 'spool2'), spoolBytes: 5 * 1024 ** 2 });
    try {
      assert.is(fixed.stats().spool.limitBytes, 5 * 1024 ** 2);
    } finally {
      await fixed.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
