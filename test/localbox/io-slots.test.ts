// Reads and writes take turns in libuv's pool (store/io-slots.ts): at most 8 file operations are
// admitted at once and the rest wait in arrival order, a download's reads included, so a thousand
// downloads cannot put every upload write behind all of their reads (2,000-client storm, issue 15).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlockStore } from '../../src/localbox/store/blocks.ts';
import { ioSlotState, withIoSlot } from '../../src/localbox/store/io-slots.ts';

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
  assert.ok(order.includes('read') && order.includes('write'), order.join(','));
  reader.release(chunk!);
  await reader.close();
  assert.equal(ioSlotState(), { inPool: 0, waiting: 0 });
});

test.run();
