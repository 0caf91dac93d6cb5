// The box's off-thread SHA-256 (store/block-hash.ts): digests equal node:crypto's for any chunking,
// with many hashes interleaved through the slots, on one hashing thread or several; update() copies,
// so a caller that reuses or frees its buffer right after does not change the digest; peek() answers
// for the bytes so far and the hash goes on; a hash ended by digest() or dispose() refuses more;
// writers are held back while the hashing thread lags and let go once it caught up, however small
// their chunks (regression: writers of 1 KiB chunks let go in turn posted no slot and all waited).
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlockHash, hashBackpressure, PRESSURE_BYTES, setHashThreads } from '../../src/localbox/store/block-hash.ts';
import { mulberry32 } from '../../src/util/prng.ts';
import { releaseMemory } from '../../src/util/release-memory.ts';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function interleaved(seed: number): Promise<void> {
  const rnd = mulberry32(seed); // seeded: a failing chunking can be replayed
  const datas = Array.from({ length: 24 }, (_, i) => randomBytes(i === 0 ? 0 : Math.floor(rnd() * 3 * 1024 * 1024) + 1));
  const hashes = datas.map(() => new BlockHash());
  const offsets = datas.map(() => 0);
  for (let live = datas.length; live > 0; ) {
    live = 0;
    for (let i = 0; i < datas.length; i++) {
      const d = datas[i]!;
      if (offsets[i]! >= d.length) continue;
      live++;
      const n = Math.min(d.length - offsets[i]!, 1 + Math.floor(rnd() * (rnd() < 0.1 ? 600_000 : 70_000)));
      hashes[i]!.update(d.subarray(offsets[i]!, offsets[i]! + n));
      offsets[i]! += n;
    }
    if (rnd() < 0.3) await new Promise((r) => setImmediate(r));
  }
  const got = await Promise.all(hashes.map((h) => h.digest()));
  got.forEach((hex, i) => assert.is(hex, sha(datas[i]!), `hash ${i} (${datas[i]!.length} bytes)`));
}

test('interleaved hashes of random chunkings match node:crypto, slots crossed and reused', async () => {
  setHashThreads(1);
  await interleaved(7);
});

test('the same, spread over three hashing threads (a many-core box)', async () => {
  setHashThreads(3);
  await interleaved(11);
  setHashThreads(1);
});

test('update() copies: the caller may overwrite or free its buffer at once', async () => {
  const h = new BlockHash();
  const scratch = Buffer.allocUnsafeSlow(64 * 1024);
  const parts: Buffer[] = [];
  for (let i = 0; i < 40; i++) {
    scratch.fill(i);
    parts.push(Buffer.from(scratch));
    h.update(scratch);
  }
  const freed = Buffer.allocUnsafeSlow(64 * 1024).fill(0xab);
  parts.push(Buffer.from(freed));
  h.update(freed);
  assert.ok(releaseMemory(freed), 'the buffer was freed');
  assert.is(await h.digest(), sha(Buffer.concat(parts)));
});

test('peek() answers for the bytes so far and the hash goes on; digest() and dispose() end it', async () => {
  const a = randomBytes(300_000);
  const b = randomBytes(5_000);
  const h = new BlockHash();
  h.update(a);
  const early = h.peek();
  h.update(b);
  assert.is(await early, sha(a));
  assert.is(await h.peek(), sha(Buffer.concat([a, b])));
  assert.ok(h.live);
  assert.is(await h.digest(), sha(Buffer.concat([a, b])));
  assert.not.ok(h.live);
  assert.throws(() => h.update(b), /after digest/);
  try {
    await h.digest();
    assert.unreachable('a second digest');
  } catch (err) {
    assert.match(String(err), /digest twice/);
  }
  const d = new BlockHash();
  d.update(a);
  d.dispose();
  assert.not.ok(d.live);
  assert.is(await new BlockHash().digest(), sha(Buffer.alloc(0)), 'no bytes: the empty digest');
});

test('writers are held back while the hashing thread lags, then let go', async () => {
  const hashes = Array.from({ length: 4 }, () => new BlockHash());
  const data = randomBytes(1024 * 1024);
  let wait: Promise<void> | undefined;
  let fed = 0;
  // up to 64 MiB at once, faster than one thread hashes: the pressure mark is crossed
  for (let i = 0; i < 64 && !wait; i++) {
    hashes[i % 4]!.update(data);
    fed++;
    wait = hashBackpressure();
  }
  assert.ok(wait, `backpressure after ${fed} MiB`);
  assert.ok(fed * 1024 * 1024 >= PRESSURE_BYTES, `not before the mark: ${fed} MiB`);
  await wait;
  assert.is(hashBackpressure(), undefined, 'caught up');
  const per = [0, 1, 2, 3].map((k) => Buffer.concat(Array.from({ length: Math.ceil((fed - k) / 4) }, () => data)));
  const got = await Promise.all(hashes.map((h) => h.digest()));
  got.forEach((hex, k) => assert.is(hex, sha(per[k]!), `hash ${k}`));
});

test('hundreds of writers of small chunks held back all finish (none waits for a slot no one posts)', async () => {
  const big = new BlockHash();
  const bigData = randomBytes(PRESSURE_BYTES + 1024 * 1024);
  big.update(bigData);
  assert.ok(hashBackpressure(), 'the thread is behind');
  const writers = Array.from({ length: 300 }, async (_, w) => {
    const h = new BlockHash();
    const parts: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      await hashBackpressure();
      const part = Buffer.alloc(1024, (w + i) & 0xff);
      parts.push(part);
      h.update(part);
    }
    assert.is(await h.digest(), sha(Buffer.concat(parts)), `writer ${w}`);
  });
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('writers still held back after 20 s')), 20_000)));
  try {
    await Promise.race([Promise.all(writers), stuck]);
  } finally {
    clearTimeout(timer);
  }
  assert.is(await big.digest(), sha(bigData));
});

test.run();
