// Storage: content_hash against the published vectors, block deduplication across files and
// accounts (two identical 100 MiB uploads store their blocks once), garbage collection of blocks
// that no file references any more.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { contentHash, ContentHasher } from '../../src/localbox/index.ts';
import { bytes, makeBox, type TestBox } from './helpers.ts';

const MiB = 1024 * 1024;

test('content_hash matches the published vectors (reference §4)', () => {
  const vectors: [number, string][] = [
    [0, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
    [1, '1cd6ef71e6e0ff46ad2609d403dc3fee244417089aa4461245a4e4fe23a55e42'],
    [2, '01e0655fb754d10418a73760f57515f4903b298e6d67dda6bf0987fa79c22c88'],
    [4096, '8620913d33852befe09f16fff8fd75f77a83160d29f76f07e0276e9690903035'],
    [4194303, '647c8627d70f7a7d13ce96b1e7710a771a55d41a62c3da490d92e56044d311fa'],
    [4194304, 'd4d63bac5b866c71620185392a8a6218ac1092454a2d16f820363b69852befa3'],
    [4194305, '8f553da8d00d0bf509d8470e242888be33019c20c0544811f5b2b89e98360b92'],
    [8388608, 'e08b3ba1f538804075c5f939accdeaa9efc7b5c01865c94a41e78ca6550a88e7'],
  ];
  for (const [n, hex] of vectors) {
    const data = Buffer.alloc(n, 'A');
    assert.is(contentHash(data), hex, `n=${n}`);
    // any chunking gives the same hash
    const h = new ContentHasher();
    for (let i = 0; i < n; i += 999_983) h.update(data.subarray(i, i + 999_983));
    assert.is(h.digest(), hex, `chunked n=${n}`);
  }
});

function blocksOnDisk(dir: string): { count: number; bytes: number } {
  let count = 0;
  let total = 0;
  const root = join(dir, 'blocks');
  for (const sub of readdirSync(root)) {
    if (sub === 'tmp') continue;
    for (const f of readdirSync(join(root, sub))) {
      count++;
      total += statSync(join(root, sub, f)).size;
    }
  }
  return { count, bytes: total };
}

let t: TestBox;
test.before(async () => {
  t = await makeBox();
});
test.after(async () => {
  await t.cleanup();
});

test('server content_hash of an uploaded vector file matches', async () => {
  const dbx = t.sdk(await t.box.createAccount('vec'));
  const r = await dbx.filesUpload({ path: '/a.bin', contents: Buffer.alloc(4194305, 'A') });
  assert.is(r.result.content_hash, '8f553da8d00d0bf509d8470e242888be33019c20c0544811f5b2b89e98360b92');
  await dbx.filesDeleteV2({ path: '/a.bin' });
  await t.admin('POST', 'gc');
});

test('dedup: two identical 100 MiB uploads (two accounts) store the blocks once; gc frees them', async () => {
  const data = bytes(100 * MiB, 11);
  const a = t.sdk(await t.box.createAccount('alice'));
  const b = t.sdk(await t.box.createAccount('bob'));
  const before = blocksOnDisk(t.dir);
  const r1 = await a.filesUpload({ path: '/one.bin', contents: data });
  const r2 = await b.filesUpload({ path: '/two.bin', contents: data });
  await a.filesCopyV2({ from_path: '/one.bin', to_path: '/copy.bin' });
  assert.is(r1.result.content_hash, r2.result.content_hash);
  const after = blocksOnDisk(t.dir);
  assert.is(after.bytes - before.bytes, 100 * MiB);
  assert.is(after.count - before.count, 25);
  const stats = await t.admin<{ storedBlockBytes: number }>('GET', 'stats');
  assert.is(stats.storedBlockBytes, after.bytes);
  // deleting one copy keeps the blocks; deleting every reference frees them
  await a.filesDeleteV2({ path: '/one.bin' });
  await a.filesDeleteV2({ path: '/copy.bin' });
  await t.admin('POST', 'gc');
  assert.is(blocksOnDisk(t.dir).bytes, after.bytes);
  const dl = await b.filesDownload({ path: '/two.bin' });
  assert.ok((dl.result as unknown as { fileBinary: Buffer }).fileBinary.equals(data));
  await b.filesDeleteV2({ path: '/two.bin' });
  const gc = await t.admin<{ deletedBlocks: number }>('POST', 'gc');
  assert.is(gc.deletedBlocks, 25);
  assert.is(blocksOnDisk(t.dir).bytes, before.bytes);
});

test.run();
