// Crash safety: kill -9 the local box while uploads (single and session) and batch commits are in
// flight, restart it on the same data dir, and check that the metadata is consistent, every
// committed file is intact (bytes and content_hash), no temp file survives and every block file on
// disk is referenced (orphans collected at start-up).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Dropbox } from 'dropbox';
import { contentHash, startLocalBox, type LocalBoxAccount } from '../../src/localbox/index.ts';
import { bytes, makeBox, wrap, type TestBox } from './helpers.ts';

const MiB = 1024 * 1024;
let t: TestBox;
let acc: LocalBoxAccount;
const committed = new Map<string, Buffer>(); // path → bytes of files whose commit was acknowledged

function blockFiles(dir: string): { blocks: Set<string>; tmp: number } {
  const root = join(dir, 'blocks');
  const blocks = new Set<string>();
  for (const sub of readdirSync(root)) if (sub !== 'tmp') for (const f of readdirSync(join(root, sub))) blocks.add(f);
  return { blocks, tmp: readdirSync(join(root, 'tmp')).length };
}

/** Load that is cut short by the kill: every call may fail; acknowledged commits are recorded. */
function load(dbx: Dropbox, round: number): Promise<unknown>[] {
  const jobs: Promise<unknown>[] = [];
  for (let i = 0; i < 4; i++) {
    const data = bytes(3 * MiB + i * 7919, round * 100 + i);
    const path = `/r${round}/single${i}.bin`;
    jobs.push(dbx.filesUpload({ path, contents: data, mode: { '.tag': 'overwrite' } }).then(() => committed.set(path, data)));
  }
  for (let i = 0; i < 3; i++) {
    const data = bytes(9 * MiB + i, round * 100 + 50 + i);
    const path = `/r${round}/session${i}.bin`;
    jobs.push(
      (async () => {
        const { session_id } = (await dbx.filesUploadSessionStart({ contents: data.subarray(0, 2 * MiB + 1) })).result;
        await dbx.filesUploadSessionAppendV2({ cursor: { session_id, offset: 2 * MiB + 1 }, contents: data.subarray(2 * MiB + 1, 6 * MiB), close: false });
        await dbx.filesUploadSessionAppendV2({ cursor: { session_id, offset: 6 * MiB }, contents: data.subarray(6 * MiB), close: true });
        const r = await dbx.filesUploadSessionFinishBatchV2({ entries: [{ cursor: { session_id, offset: data.length }, commit: { path, mode: { '.tag': 'overwrite' } } }] });
        if (r.result.entries[0]!['.tag'] === 'success') committed.set(path, data);
      })(),
    );
  }
  // overwrite an already committed file and delete another: either the old or the new state, never a mix
  jobs.push(
    (async () => {
      const data = bytes(5 * MiB, 999 + round);
      await dbx.filesUpload({ path: '/stable/over.bin', contents: data, mode: { '.tag': 'overwrite' } });
      committed.set('/stable/over.bin', data);
    })(),
  );
  return jobs.map((j) => j.catch(() => undefined));
}

async function verify(dbx: Dropbox): Promise<void> {
  const entries: { path_lower?: string; path_display?: string; size?: number; content_hash?: string; '.tag': string }[] = [];
  let page = await dbx.filesListFolder({ path: '', recursive: true, limit: 100 });
  entries.push(...(page.result.entries as typeof entries));
  while (page.result.has_more) {
    page = await dbx.filesListFolderContinue({ cursor: page.result.cursor });
    entries.push(...(page.result.entries as typeof entries));
  }
  const files = entries.filter((e) => e['.tag'] === 'file');
  for (const f of files) {
    const dl = await dbx.filesDownload({ path: f.path_lower! });
    const body = (dl.result as unknown as { fileBinary: Buffer }).fileBinary;
    assert.is(body.length, f.size, f.path_display);
    assert.is(contentHash(body), f.content_hash, f.path_display);
  }
  for (const [path, data] of committed) {
    if (path === '/stable/over.bin') continue; // checked below: one of the versions
    const dl = await dbx.filesDownload({ path });
    assert.ok((dl.result as unknown as { fileBinary: Buffer }).fileBinary.equals(data), `${path} intact`);
  }
  const over = await dbx.filesDownload({ path: '/stable/over.bin' });
  const overBody = (over.result as unknown as { fileBinary: Buffer }).fileBinary;
  assert.ok(overBody.length === 5 * MiB, 'the overwritten file is one whole version');
  // every folder's parent exists
  const paths = new Set(entries.map((e) => e.path_lower));
  for (const e of entries) {
    const parent = e.path_lower!.slice(0, e.path_lower!.lastIndexOf('/'));
    if (parent) assert.ok(paths.has(parent), `parent of ${e.path_lower}`);
  }
}

test.before(async () => {
  t = await makeBox({}, { gcIntervalMs: 0 });
  acc = await t.box.createAccount('alice');
  const dbx = t.sdk(acc);
  const base = bytes(5 * MiB, 1);
  await dbx.filesUpload({ path: '/stable/over.bin', contents: base });
  committed.set('/stable/over.bin', base);
  const keep = bytes(6 * MiB + 3, 2);
  await dbx.filesUpload({ path: '/stable/keep.bin', contents: keep });
  committed.set('/stable/keep.bin', keep);
});
test.after(async () => {
  await t.cleanup();
});

for (const [round, delayMs] of [[1, 150], [2, 400], [3, 900]] as const) {
  test(`kill -9 after ${delayMs} ms of uploads and commits, restart, consistent`, async () => {
    const jobs = load(t.sdk(acc), round);
    await new Promise((r) => setTimeout(r, delayMs));
    t.box.kill();
    await Promise.all(jobs);
    await new Promise((r) => setTimeout(r, 100));
    const dir = t.dir;
    t = wrap(await startLocalBox({ dataDir: dir }, { gcIntervalMs: 0 }), dir);
    // start-up gc: nothing in tmp, every block on disk referenced, every referenced block on disk
    const stats = await t.admin<{ referencedBlocks: number }>('GET', 'stats');
    const disk = blockFiles(dir);
    assert.is(disk.tmp, 0);
    assert.is(disk.blocks.size, stats.referencedBlocks);
    // tokens survive a restart
    await verify(t.sdk(acc));
  });
}

test.run();
