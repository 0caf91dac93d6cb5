// How far an upload's client may run ahead of Dropbox (workers/upload-lead.ts): the thread's send
// rate as measured from what its calls' bodies take, the lead each upload is allowed from it, and
// Retention.fill stopping at that lead with the client's bytes still in the ring (backpressure).
// Main thread only: a real control block and a real ring, no worker; the rate's clock is a counter.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RingReader, RingWriter, createRing } from 'native-free-ringbuf';
import { G, createControl } from '../../src/transfer/shared-layout.ts';
import { createThreadContext } from '../../workers/thread-context.ts';
import { Retention } from '../../workers/retention.ts';
import { DRAIN_SHARE, DRAIN_SPOOL_MIN_MEMORY, LEAD_SECONDS, MAX_LEAD_BYTES, MIN_LEAD_BYTES, PRIOR_BYTES_PER_S, UploadFlow, WARM_UP_S, retainLimit } from '../../workers/upload-lead.ts';

const MB = 1000 * 1000;
const MiB = 1024 * 1024;

/** A flow with one call body open (the rate's clock runs) and a clock moved by hand. */
function clocked(): { flow: UploadFlow; advance(ms: number): void } {
  let now = 0;
  const flow = new UploadFlow(() => now);
  flow.bodyOpen();
  return { flow, advance: (ms) => void (now += ms) };
}

/** `bytesPerSecond` sent for `seconds`, in 100 ms steps. */
function send(c: ReturnType<typeof clocked>, bytesPerSecond: number, seconds: number): void {
  for (let i = 0; i < seconds * 10; i++) {
    c.advance(100);
    c.flow.sent(bytesPerSecond / 10);
  }
}

test('engine.uploadLeadSec, as the control block holds it, sets the seconds of lead (0: the default)', () => {
  const control = createControl({ uploadMemoryBytes: 8 * MiB, uploadLeadSec: 5 });
  const words = new Int32Array(control.sab);
  const flow = new UploadFlow(() => 0, () => Atomics.load(words, G.LEAD_MS) / 1000);
  flow.begin();
  assert.is(flow.paceLead(), PRIOR_BYTES_PER_S * 5);
  Atomics.store(words, G.LEAD_MS, 0);
  assert.is(flow.paceLead(), PRIOR_BYTES_PER_S * LEAD_SECONDS);
  // The thread context reads the engine's value.
  const ctx = createThreadContext(createControl({ uploadMemoryBytes: 8 * MiB, uploadLeadSec: 7 }));
  ctx.uploadFlow.begin();
  assert.is(ctx.uploadFlow.paceLead(), PRIOR_BYTES_PER_S * 7);
});

test("before any byte was sent, the prior rate is shared by the thread's uploads, never below the floor", () => {
  const c = clocked();
  c.flow.begin();
  assert.is(c.flow.paceLead(), PRIOR_BYTES_PER_S * LEAD_SECONDS);
  for (let i = 1; i < 100; i++) c.flow.begin();
  assert.is(c.flow.paceLead(), Math.floor((PRIOR_BYTES_PER_S / 100) * LEAD_SECONDS));
  assert.ok(c.flow.paceLead() > 10 * MiB, 'a 10 MiB STOR of a 200-session storm still fits one call');
  for (let i = 100; i < 5000; i++) c.flow.begin();
  assert.is(c.flow.paceLead(), MIN_LEAD_BYTES);
});

test("the lead an upload gets is the pace's, never above MAX_LEAD_BYTES (16 MiB)", () => {
  const c = clocked();
  c.flow.begin();
  // One upload alone: 20 s of the prior rate would be 1.28 GB.
  assert.is(c.flow.paceLead(), PRIOR_BYTES_PER_S * LEAD_SECONDS);
  assert.is(c.flow.leadLimit(), MAX_LEAD_BYTES);
  assert.is(MAX_LEAD_BYTES, 16 * MiB);
  // 100 uploads: the pace's 12.8 MB is below the cap and holds.
  for (let i = 1; i < 100; i++) c.flow.begin();
  assert.is(c.flow.leadLimit(), c.flow.paceLead());
  assert.is(c.flow.leadLimit(), Math.floor((PRIOR_BYTES_PER_S / 100) * LEAD_SECONDS));
});

test('the rate follows what the calls send: 10 uploads sharing 10 MB/s may each be 20 s of 1 MB/s ahead', () => {
  const c = clocked();
  for (let i = 0; i < 10; i++) c.flow.begin();
  send(c, 10 * MB, 12);
  const rate = c.flow.bytesPerSecond();
  assert.ok(Math.abs(rate - 10 * MB) < 0.05 * 10 * MB, `rate ${rate} B/s`);
  const lead = c.flow.paceLead();
  assert.ok(Math.abs(lead - LEAD_SECONDS * MB) < 0.05 * LEAD_SECONDS * MB, `lead ${lead} B`);
  // The backend slows to 0.25 MB/s: within a few time constants the lead falls to the floor.
  send(c, 0.25 * MB, 12);
  assert.ok(c.flow.bytesPerSecond() < 0.3 * MB, `rate ${c.flow.bytesPerSecond()} B/s`);
  assert.is(c.flow.paceLead(), MIN_LEAD_BYTES);
  // Nothing sent for a while with a body open (the backend takes nothing): the rate decays.
  c.advance(30_000);
  assert.ok(c.flow.bytesPerSecond() < 0.01 * MB);
  assert.is(c.flow.paceLead(), MIN_LEAD_BYTES);
});

test('no body open (every upload still filling its first call): the rate holds, it does not read as a slow backend', () => {
  const c = clocked();
  for (let i = 0; i < 10; i++) c.flow.begin();
  send(c, 10 * MB, 12);
  c.flow.bodyClose();
  const held = c.flow.bytesPerSecond();
  c.advance(30_000);
  assert.is(c.flow.bytesPerSecond(), held);
  c.flow.bodyOpen();
  c.advance(2_000);
  assert.ok(Math.abs(c.flow.bytesPerSecond() - held * Math.exp(-1)) < 1, 'with a body open again it decays');
});

test('while the thread warms up, a dip below the prior share does not shrink the lead; after it, it does', () => {
  const c = clocked();
  for (let i = 0; i < 50; i++) c.flow.begin();
  const prior = Math.floor((PRIOR_BYTES_PER_S / 50) * LEAD_SECONDS);
  send(c, 1 * MB, WARM_UP_S - 1);
  assert.is(c.flow.paceLead(), prior, 'warming up: the prior share holds');
  send(c, 1 * MB, 8);
  assert.ok(c.flow.paceLead() < prior / 10, `warmed up: the measured share (${c.flow.paceLead()} B)`);
});

test('a thread that went idle starts its next upload from the prior again, not from a decayed rate', () => {
  const c = clocked();
  c.flow.begin();
  send(c, 1 * MB, 10);
  c.flow.end();
  c.advance(60_000);
  c.flow.begin();
  assert.is(c.flow.bytesPerSecond(), PRIOR_BYTES_PER_S);
  c.flow.begin(); // a second one while the first runs keeps the measured rate
  send(c, 2 * MB, 16);
  assert.ok(c.flow.bytesPerSecond() < 2.1 * MB, `rate ${c.flow.bytesPerSecond()} B/s`);
});

test("Retention.fill stops at the lead limit and leaves the rest in the ring (reported 'lead'), then goes on", async () => {
  const control = createControl({ uploadMemoryBytes: 8 * MiB });
  const ctx = createThreadContext(control);
  const handle = createRing(1 << 20);
  const writer = new RingWriter(handle);
  const reader = new RingReader(handle);
  const retention = new Retention(ctx, '', 1, 0, 0);
  const data = Buffer.alloc(900 * 1024, 7);
  assert.is(writer.write(data, 0, data.length), data.length);
  let hashed = 0;
  const onBytes = (b: Uint8Array): void => void (hashed += b.length);
  assert.is(await retention.fill(reader, onBytes, 300 * 1024), 'lead');
  assert.is(retention.end, 300 * 1024);
  assert.is(hashed, 300 * 1024, 'the hasher saw exactly what was retained');
  assert.is(reader.readable(), 600 * 1024, 'the rest waits in the ring');
  assert.is(await retention.fill(reader, onBytes, 1000 * 1024), 'more');
  assert.is(retention.end, 900 * 1024);
  writer.end();
  assert.is(await retention.fill(reader, onBytes, 900 * 1024), 'ended', 'at the limit with nothing left, the end is still seen');
  await retention.destroy();
});

test('a streamed call draining the backlog retained before it: the client moves at DRAIN_SHARE of its pace (into memory only with a small share), the lead shrinks to the memory share', () => {
  // 12 MiB retained ahead (the lead reached) when the body opened at 0; a 2 MiB memory share.
  const lead = 12 * MiB;
  const stream = { from: 0, backlogEnd: 12 * MiB, memoryShare: 2 * MiB };
  assert.equal(retainLimit(0, 0, lead, null), { end: 12 * MiB, spoolEnd: Infinity }, 'no body open: the lead, spool allowed');
  assert.is(retainLimit(0, 0, lead, stream).end, 12 * MiB, 'the body opened: nothing more until it sends');
  // Before: the limit fell to sentTo + the memory share at once, below what was retained — the
  // client stood still until ~10 MiB of the backlog were sent.
  const sent = 4 * MiB;
  const drain = retainLimit(0, sent, lead, stream);
  assert.is(drain.end, 12 * MiB + sent * DRAIN_SHARE, 'the client moves while the backlog drains');
  assert.is(drain.spoolEnd, Infinity, 'into the spool too, with a memory share of 2 MiB');
  // A small share (thousands of uploads in a small budget): beyond the share ahead, memory only.
  const small = retainLimit(0, sent, lead, { ...stream, memoryShare: 16 * 1024 });
  assert.is(small.end, 12 * MiB + sent * DRAIN_SHARE);
  assert.is(small.spoolEnd, sent + 16 * 1024);
  assert.ok(DRAIN_SPOOL_MIN_MEMORY > 16 * 1024 && DRAIN_SPOOL_MIN_MEMORY <= 2 * MiB);
  // The unsent lead shrinks as the body sends, until only the memory share is ahead.
  let last = Infinity;
  for (let s = 0; s <= 40 * MiB; s += MiB) {
    const limit = retainLimit(0, s, lead, stream);
    const ahead = limit.end - s;
    assert.ok(ahead <= lead && ahead >= 2 * MiB, `${ahead} B ahead at ${s}`);
    assert.ok(ahead <= last, 'never grows while streaming');
    last = ahead;
  }
  assert.is(last, 2 * MiB, 'the backlog sent: the memory share ahead');
  // A lead smaller than the memory share stays the lead.
  assert.is(retainLimit(0, 5 * MiB, MiB, { from: 0, backlogEnd: MiB, memoryShare: 2 * MiB }).end, 6 * MiB);
  // An acknowledgement ahead of the body (a retry from retention): counted from acked.
  assert.is(retainLimit(8 * MiB, 0, lead, null).end, 20 * MiB);
});

test("Retention.fill takes no byte into the spool from spoolLimit on: memory only, else 'lead'", async () => {
  const control = createControl({ uploadMemoryBytes: 256 * 1024, spoolBytes: 64 * MiB });
  const ctx = createThreadContext(control);
  const dir = mkdtempSync(join(tmpdir(), 'dropftp-lead-test-'));
  const handle = createRing(1 << 20);
  const writer = new RingWriter(handle);
  const reader = new RingReader(handle);
  const retention = new Retention(ctx, dir, 1, 64 * MiB, 0);
  try {
    const data = Buffer.alloc(900 * 1024, 7);
    assert.is(writer.write(data, 0, data.length), data.length);
    // Memory (a 256 KiB share) first, then the spool up to 600 KiB, then nothing: memory is full.
    assert.is(await retention.fill(reader, () => {}, Infinity, 600 * 1024), 'lead');
    assert.is(retention.end, 600 * 1024, 'stopped at spoolLimit');
    assert.is(reader.readable(), 300 * 1024, 'the rest waits in the ring');
    assert.is(await retention.fill(reader, () => {}, Infinity, Infinity), 'more', 'without the limit it goes on into the spool');
    assert.is(retention.end, 900 * 1024);
  } finally {
    await retention.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
