// The scrypt gate (src/users/scrypt-gate.ts): concurrent scrypt work is bounded by count and by
// memory, served in arrival order, an oversized computation runs alone; and a burst of 24 distinct
// real password checks never runs more at once than the process-wide gate allows.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hashPassword, scryptGate, verifyPassword } from '../../src/users/password.ts';
import { ScryptGate, threadPoolSize } from '../../src/users/scrypt-gate.ts';

const MiB = 1024 * 1024;

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('bounded by memory and count, in arrival order; an oversized one runs alone', async () => {
  const gate = new ScryptGate({ maxBytes: 32 * MiB, maxRunning: 3 });
  const started: string[] = [];
  const gates = new Map<string, ReturnType<typeof deferred>>();
  const job = (name: string, bytes: number): Promise<string> => {
    const d = deferred();
    gates.set(name, d);
    return gate.run(bytes, async () => {
      started.push(name);
      await d.promise;
      return name;
    });
  };
  const all = [job('a', 16 * MiB), job('b', 16 * MiB), job('c', 16 * MiB), job('big', 64 * MiB), job('d', 1 * MiB)];
  await tick();
  assert.equal(started, ['a', 'b'], '32 MiB allow two 16 MiB computations');
  assert.is(gate.waiting, 3);
  gates.get('a')!.resolve();
  await tick();
  assert.equal(started, ['a', 'b', 'c']);
  gates.get('b')!.resolve();
  gates.get('c')!.resolve();
  await tick();
  await tick();
  assert.equal(started, ['a', 'b', 'c', 'big'], 'the oversized one runs, alone');
  assert.is(gate.running, 1);
  gates.get('big')!.resolve();
  await tick();
  await tick();
  assert.equal(started, ['a', 'b', 'c', 'big', 'd']);
  gates.get('d')!.resolve();
  assert.equal(await Promise.all(all), ['a', 'b', 'c', 'big', 'd']);
  assert.is(gate.peakRunning, 2);
  assert.is(gate.running, 0);

  const counted = new ScryptGate({ maxBytes: 1024 * MiB, maxRunning: 2 });
  const holds = [deferred(), deferred(), deferred()];
  const runs = holds.map((h) => counted.run(1, () => h.promise));
  await tick();
  assert.is(counted.running, 2, 'maxRunning bounds small computations');
  for (const h of holds) h.resolve();
  await Promise.all(runs);
  assert.is(counted.peakRunning, 2);
});

test('a work that throws releases its slot', async () => {
  const gate = new ScryptGate({ maxBytes: 16 * MiB, maxRunning: 1 });
  await gate.run(16 * MiB, async () => {
    throw new Error('boom');
  }).catch(() => {});
  assert.is(await gate.run(16 * MiB, async () => 'next'), 'next');
});

test('threadPoolSize reads UV_THREADPOOL_SIZE like libuv (default 4)', () => {
  assert.is(threadPoolSize({}), 4);
  assert.is(threadPoolSize({ UV_THREADPOOL_SIZE: '16' }), 16);
  assert.is(threadPoolSize({ UV_THREADPOOL_SIZE: 'x' }), 4);
});

test('a burst of 24 distinct password checks stays within the process-wide gate', async () => {
  const hashes = await Promise.all(Array.from({ length: 4 }, (_, i) => hashPassword(`pw${i}`)));
  const results = await Promise.all(Array.from({ length: 24 }, (_, i) => verifyPassword(i % 2 ? `pw${i % 4}` : 'wrong', hashes[i % 4]!)));
  assert.equal(results, Array.from({ length: 24 }, (_, i) => i % 2 === 1));
  assert.is(scryptGate.maxRunning, Math.max(1, threadPoolSize() - 1));
  assert.ok(scryptGate.peakRunning <= scryptGate.maxRunning, `peak ${scryptGate.peakRunning}`);
  assert.ok(scryptGate.peakRunning >= 1);
  assert.is(scryptGate.maxBytes, 256 * MiB);
});

test.run();
