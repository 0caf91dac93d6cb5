// Downloads share the read budget equally at every moment (store/block-reader.ts): a read is sized
// from the readers open when it starts, so a download that opened alone does not keep reading 1 MiB
// per turn once a thousand others read 64 KiB each (2,000-client storm: unfair downloads, issue 15).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlockStore } from '../../src/localbox/store/blocks.ts';

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'read-share-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('a download opened first reads no more per turn than those opened after it', async () => {
  const store = new BlockStore(dir);
  const data = Buffer.alloc(6 * MiB);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
  const writer = store.writer();
  await writer.write(data);
  const blocks = await writer.finish();
  writer.release();

  const early = store.reader(blocks, 0, data.length);
  const alone = (await early.next())!;
  assert.is(alone.length, MiB, 'alone, a download reads 1 MiB at a time');
  assert.ok(alone.equals(data.subarray(0, MiB)));
  early.release(alone);

  const late = Array.from({ length: 999 }, () => store.reader(blocks, 0, data.length));
  const lateChunk = (await late[0]!.next())!;
  const earlyChunk = (await early.next())!;
  assert.is(lateChunk.length, 64 * 1024, 'a thousand downloads read 64 KiB each');
  assert.is(earlyChunk.length, lateChunk.length, 'the first download gets the same share per turn');
  assert.ok(earlyChunk.equals(data.subarray(MiB, MiB + earlyChunk.length)), 'and stays byte-exact');
  late[0]!.release(lateChunk);
  early.release(earlyChunk);
  await Promise.all([early, ...late].map((r) => r.close()));

  // once the others are gone, the survivor reads large again
  const after = store.reader(blocks, 0, data.length);
  const big = (await after.next())!;
  assert.is(big.length, MiB);
  after.release(big);
  await after.close();
});

test.run();
