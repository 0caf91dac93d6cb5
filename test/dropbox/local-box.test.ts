// The request layer under the RPC client against the real local box, faults injected on the wire:
// a 429 (either kind), a 5xx or a reset followed by success is invisible to the caller; a
// Retry-After beyond the cap is capped and the call completes; a 401 expired_access_token under 20
// concurrent calls causes exactly one token refresh (the layer's single flight, with a token source
// that does not deduplicate by itself); every call start goes through the pacing hook.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent } from 'undici';
import { refreshAccessToken } from '../../src/auth/oauth.ts';
import { DropboxRpc } from '../../src/dropbox/rpc.ts';
import { adminOf, startLocalBox, type LocalBox, type LocalBoxAccount } from '../../src/localbox/index.ts';
import { recordingPacer } from './helpers.ts';

let dir = '';
let box: LocalBox;
let alice: LocalBoxAccount;
let agent: Agent;
const warnings: string[] = [];

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dropftp-layer-'));
  box = await startLocalBox({ dataDir: join(dir, 'box') });
  alice = await box.createAccount('alice');
  agent = new Agent({ connections: 32 });
  const rpc = new DropboxRpc({ name: 'alice', apiUrl: box.url, accessToken: alice.accessToken }, agent);
  await rpc.createFolder('/dir');
  await rpc.createFolder('/dir/sub');
});

test.after(async () => {
  await agent.close();
  await box.close();
  rmSync(dir, { recursive: true, force: true });
});

function rpcWith(options: Partial<ConstructorParameters<typeof DropboxRpc>[0]> = {}): DropboxRpc {
  return new DropboxRpc({ name: 'alice', apiUrl: box.url, accessToken: alice.accessToken, ...options }, agent);
}

test('429 too_many_requests, then success: invisible to the caller, Retry-After waited', async () => {
  await box.setFaults({ rules: [{ kind: 'too_many_requests', routes: ['files/get_metadata'], retryAfterSec: 1, count: 1 }] });
  const pacer = recordingPacer();
  const started = performance.now();
  const entry = await rpcWith({ pacer }).getMetadata('/dir');
  assert.is(entry.tag, 'folder');
  assert.ok(performance.now() - started >= 950, 'the 1 s Retry-After was honoured');
  assert.is((await box.faultCounts()).too_many_requests, 1);
  assert.equal(pacer.reports, [{ kind: 'throttled', retryAfterMs: 1000 }, { kind: 'ok' }]);
});

test('too_many_write_operations on a create, 5xx on a listing, a reset on a stat: all invisible', async () => {
  await box.setFaults({
    rules: [
      { kind: 'too_many_write_operations', routes: ['files/create_folder_v2'], retryAfterSec: 0, count: 1 },
      { kind: 'server_error', status: 503, routes: ['files/list_folder'], count: 2 },
      { kind: 'reset', routes: ['files/get_metadata'], count: 1 },
    ],
  });
  const rpc = rpcWith();
  await rpc.createFolder('/dir/locked');
  const names = (await rpc.listFolder('/dir')).map((e) => e.name).sort();
  assert.equal(names, ['locked', 'sub']);
  assert.is((await rpc.getMetadata('/dir/locked')).tag, 'folder');
  const counts = await box.faultCounts();
  assert.is(counts.too_many_write_operations, 1);
  assert.ok((counts.server_error ?? 0) >= 2 && (counts.reset ?? 0) >= 1, JSON.stringify(counts));
});

test('a Retry-After beyond maxRetryAfterMs is capped and logged; the call completes', async () => {
  await box.setFaults({ rules: [{ kind: 'too_many_requests', routes: ['files/get_metadata'], retryAfterSec: 100_000, count: 1 }] });
  warnings.length = 0;
  const rpc = new DropboxRpc({ name: 'alice', apiUrl: box.url, accessToken: alice.accessToken, maxRetryAfterMs: 250 }, agent);
  // The RPC client logs through the layer's default (a process warning): catch it here.
  const onWarning = (w: Error): void => void warnings.push(w.message);
  process.on('warning', onWarning);
  const started = performance.now();
  try {
    assert.is((await rpc.getMetadata('/dir')).tag, 'folder');
  } finally {
    await new Promise((r) => setImmediate(r));
    process.off('warning', onWarning);
  }
  const ms = performance.now() - started;
  assert.ok(ms >= 240 && ms < 3000, `waited ${ms.toFixed(0)} ms for a 100,000 s Retry-After capped at 250 ms`);
  assert.ok(warnings.some((w) => /capped at 250 ms/.test(w)), warnings.join(' | '));
});

test('every call start goes through the pacing hook, retries included', async () => {
  await box.setFaults({ rules: [{ kind: 'server_error', status: 500, routes: ['files/list_folder'], count: 1 }] });
  const pacer = recordingPacer();
  const rpc = rpcWith({ pacer });
  await rpc.listFolder('/dir');
  await rpc.getMetadata('/dir/sub');
  assert.is(pacer.admits, 3);
  assert.equal(pacer.reports, [{ kind: 'failed' }, { kind: 'ok' }, { kind: 'ok' }]);
  await box.setFaults({ rules: [] });
});

test('401 expired_access_token under 20 concurrent calls: one refresh, every call succeeds', async () => {
  await box.setFaults({ rules: [{ kind: 'latency', routes: ['oauth2/token'], latencyMs: 100 }] });
  const before = (await box.faultCounts()).latency ?? 0;
  let current = alice.accessToken;
  let refreshes = 0;
  // A token source with no single flight of its own: each expired() would be one token request.
  const tokens = {
    get: async () => current,
    expired: async () => {
      refreshes++;
      current = (await refreshAccessToken({ apiUrl: box.url, appKey: alice.appKey }, alice.refreshToken)).accessToken;
      return current;
    },
  };
  const rpc = rpcWith({ tokens });
  assert.is(await rpc.hasChildren('/dir'), true);
  const { expired } = await adminOf(box).adminCall<{ expired: number }>('POST', 'expire-tokens', { account: 'alice' });
  assert.ok(expired >= 1);
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => rpc.hasChildren(i % 2 ? '/dir' : '/dir/sub')));
  assert.equal(results, Array.from({ length: 20 }, (_, i) => i % 2 === 1));
  assert.is(refreshes, 1, 'one refresh for 20 callers');
  assert.is(((await box.faultCounts()).latency ?? 0) - before, 1, 'one token request at the box');
  assert.is.not(current, alice.accessToken);
  await box.setFaults({ rules: [] });
});

test.run();
