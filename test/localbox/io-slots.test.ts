// Reads and writes take turns in libuv's pool (store/io-slots.ts): at most 8 file operations are
// admitted at once and the rest wait in arrival order, a download's reads included, so a thousand
// downloads cannot put every upload write behind all of their reads (2,000-client storm, issue 15).
// A read that would be admitted at once runs inline instead, byte-exact; one that would wait does
// not; a slow inline read (a cold disk) sends reads to the pool for a while. A download's first open
// and read go before the operations already waiting (its first byte does not wait a whole round).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlockStore } from '../../src/localbox/store/blocks.ts';
import { inlineFileOpCount, inlineReadCount, inlineReadsAllowed, ioSlotState, readWithIoSlot, sendReadsToPool, withIoSlot } from '../../src/localbox/store/io-slots.ts';

const dir = mkdtempSync(join(tmpdir(), 'io-slots-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function gate(): { wait: Promise<void>; open(): void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

test('a download read waits for a slot and is admitted before a write queued after it', async () => {
  const store = new BlockStore(dir);
  const data = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
  const writer = store.writer();
  await writer.write(data);
  const blocks = await writer.finish();
  writer.release();

  // the first chunk opens the block file, so the next one is a read alone
  const reader = store.reader(blocks, 0, data.length);
  const first = await reader.next();
  assert.ok(first!.equals(data.subarray(0, first!.length)));
  reader.release(first!);

  const held = Array.from({ length: 8 }, () => gate());
  const holders = held.map((g) => withIoSlot(() => g.wait));
  assert.equal(ioSlotState(), { inPool: 8, waiting: 0 });

  const order: string[] = [];
  const inline0 = inlineReadCount();
  const read = reader.next().then((b) => {
    order.push('read');
    return b;
  });
  await new Promise((r) => setTimeout(r, 20));
  assert.is(ioSlotState().waiting, 1, 'the read waits for a slot');
  const write = withIoSlot(async () => void order.push('write'));
  assert.is(ioSlotState().waiting, 2);

  // one slot frees: the read, queued first, takes it; the write still waits
  held[0]!.open();
  await holders[0];
  assert.is(ioSlotState().waiting, 1, 'the write still waits');
  assert.equal(order, []);
  for (const g of held) g.open();
  await Promise.all(holders);
  const chunk = await read;
  await write;
  assert.ok(chunk!.equals(data.subarray(first!.length, first!.length + chunk!.length)));
  assert.is(inlineReadCount(), inline0, 'a read that had to wait did not run inline');
  assert.ok(order.includes('read') && order.includes('write'), order.join(','));
  reader.release(chunk!);
  await reader.close();
  assert.equal(ioSlotState(), { inPool: 0, waiting: 0 });
});

test("a new download's first open and read go before writes already waiting; its later reads take their turn", async () => {
  const store = new BlockStore(dir);
  const data = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i ^ 0x5a5a5a5a, i);
  const writer = store.writer();
  await writer.write(data);
  const blocks = await writer.finish();
  writer.release();

  const held = Array.from({ length: 8 }, () => gate());
  const holders = held.map((g) => withIoSlot(() => g.wait));
  const order: string[] = [];
  // Writes that hold their slot until let go, as a real write takes its time.
  const writeGates = [1, 2, 3].map(() => gate());
  const writes = writeGates.map((g, i) =>
    withIoSlot(() => {
      order.push(`write${i + 1}`);
      return g.wait;
    }),
  );
  assert.equal(ioSlotState(), { inPool: 8, waiting: 3 });

  const reader = store.reader(blocks, 0, data.length);
  const firstChunk = reader.next().then((b) => {
    order.push('first');
    return b;
  });
  // Slots free one at a time. The first goes to the download's open (ahead of the three writes
  // queued before it), and the open gives it back to write1; the second to the first read (ahead of
  // write2 and write3), which gives it back to write2. Queued in turn, the open and the read would
  // have waited for all three.
  for (const g of held.slice(0, 2)) {
    g.open();
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(order, ['write1', 'write2', 'first'], 'the first chunk came while write3 still waits');
  assert.is(ioSlotState().waiting, 1);
  for (const g of held.slice(2)) g.open();
  await Promise.all(holders);
  for (const g of writeGates) g.open();
  const first = await firstChunk;
  await Promise.all(writes);
  assert.equal(order, ['write1', 'write2', 'first', 'write3']);
  assert.ok(first!.equals(data.subarray(0, first!.length)));
  reader.release(first!);

  // A later read queues behind a write that waits already.
  const again = Array.from({ length: 8 }, () => gate());
  const holders2 = again.map((g) => withIoSlot(() => g.wait));
  order.length = 0;
  const write4 = withIoSlot(async () => void order.push('write4'));
  const second = reader.next().then((b) => {
    order.push('second');
    return b;
  });
  await new Promise((r) => setTimeout(r, 20));
  for (const g of again) g.open();
  await Promise.all(holders2);
  const chunk = await second;
  await write4;
  assert.equal(order, ['write4', 'second']);
  assert.ok(chunk!.equals(data.subarray(first!.length, first!.length + chunk!.length)));
  reader.release(chunk!);
  await reader.close();
  assert.equal(ioSlotState(), { inPool: 0, waiting: 0 });
});

test('uncontended reads run inline, byte-exact, and a slow one sends reads to the pool for a while', async () => {
  const store = new BlockStore(dir);
  const data = Buffer.alloc(5 * 1024 * 1024 + 333);
  for (let i = 0; i + 4 <= data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
  const writer = store.writer();
  for (let off = 0; off < data.length; off += 77_777) await writer.write(Buffer.from(data.subarray(off, off + 77_777)));
  const blocks = await writer.finish();
  writer.release();
  const readAll = async (): Promise<{ bytes: Buffer; reads: number }> => {
    const reader = store.reader(blocks, 12345, data.length);
    const parts: Buffer[] = [];
    for (let b = await reader.next(); b; b = await reader.next()) {
      parts.push(Buffer.from(b));
      reader.release(b);
    }
    await reader.close();
    return { bytes: Buffer.concat(parts), reads: parts.length };
  };
  let before = inlineReadCount();
  const opsBefore = inlineFileOpCount();
  const inline = await readAll();
  assert.ok(inline.bytes.equals(data.subarray(12345)), 'inline reads byte-exact');
  assert.is(inlineReadCount() - before, inline.reads, 'every read ran inline');
  assert.is(inlineFileOpCount() - opsBefore, 2 * blocks.length, 'each block file opened and closed inline');

  const busy = (ms: number): void => {
    const end = performance.now() + ms;
    while (performance.now() < end);
  };
  assert.is(await readWithIoSlot(() => (busy(30), 'slow'), async () => 'pool'), 'slow');
  assert.not.ok(inlineReadsAllowed(), 'a slow inline read sends reads to the pool');
  assert.is(await readWithIoSlot(() => 'inline', async () => 'pool'), 'pool');
  before = inlineReadCount();
  const opsPooled = inlineFileOpCount();
  const pooled = await readAll();
  assert.ok(pooled.bytes.equals(data.subarray(12345)), 'pool reads byte-exact');
  assert.is(inlineReadCount(), before, 'no read ran inline meanwhile');
  assert.is(inlineFileOpCount(), opsPooled, 'nor an open or a close');
  sendReadsToPool(40);
  await new Promise((r) => setTimeout(r, 60));
  assert.ok(inlineReadsAllowed(), 'inline again once the while is over');
  assert.is(await readWithIoSlot(() => 'inline', async () => 'pool'), 'inline');
  assert.equal(ioSlotState(), { inPool: 0, waiting: 0 });
});

test.run();
