// Directory cache at scale. Part A (in process): memory and apply/stat/list speed of the cache's
// tree for N entries (default 100,000) of list_folder-shaped metadata, against a baseline measured
// in the same run (keeping the raw list_folder entries in a Map, as a naive cache would). Part B (real local box): initial sync of
// F files (default 5,000) against a plain SDK recursive listing, and upload→visible latency.
// Run: node --expose-gc --import tsx benchmarks/sync-scale.ts   (env SYNC_BENCH_ENTRIES, SYNC_BENCH_FILES)
// Results: benchmarks/results/sync-scale.json

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalBox } from '../src/localbox/index.ts';
import { DirectoryCache } from '../src/sync/index.ts';
import type { RawMetadata } from '../src/sync/entry.ts';
import { Tree } from '../src/sync/tree.ts';
import { sdkFor, serverTree } from '../test/sync/helpers.ts';

const ENTRIES = Number(process.env.SYNC_BENCH_ENTRIES ?? 100_000);
const FILES = Number(process.env.SYNC_BENCH_FILES ?? 5_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

function heapUsed(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

/** N entries shaped like the local box's list_folder JSON: folders of 100 files. */
function synthetic(n: number): RawMetadata[] {
  const out: RawMetadata[] = [];
  for (let f = 0; out.length < n; f++) {
    const folder = `/Projects/Folder ${f}`;
    out.push({ '.tag': 'folder', name: `Folder ${f}`, path_lower: folder.toLowerCase(), path_display: folder, id: `id:${f.toString(36).padStart(22, 'F')}` });
    for (let i = 0; i < 99 && out.length < n; i++) {
      const path = `${folder}/Report ${i} final.PDF`;
      out.push({
        '.tag': 'file', name: `Report ${i} final.PDF`, path_lower: path.toLowerCase(), path_display: path,
        id: `id:${(f * 100 + i).toString(36).padStart(22, 'a')}`, size: 1000 + i,
        client_modified: '2026-01-02T03:04:05Z', server_modified: '2026-01-02T03:04:06Z',
        rev: (0x5a0000000000 + f * 100 + i).toString(16), content_hash: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'.replace(/^.{8}/, (f * 100 + i).toString(16).padStart(8, '0')),
      } as RawMetadata);
    }
  }
  return out;
}

/** Fresh entries as they come out of a page body (JSON.parse), the text itself already garbage. */
function loadEntries(): RawMetadata[] {
  return JSON.parse(JSON.stringify(synthetic(ENTRIES))) as RawMetadata[];
}

function partA(): Record<string, unknown> {
  let before = heapUsed();
  let raw = loadEntries();
  let started = performance.now();
  const baseline = new Map<string, RawMetadata>();
  for (const e of raw) baseline.set(e.path_lower!, e);
  const baselineApplyMs = performance.now() - started;
  raw = [];
  const baselineBytes = heapUsed() - before;
  baseline.clear();

  before = heapUsed();
  raw = loadEntries();
  started = performance.now();
  const tree = new Tree();
  for (const e of raw) tree.apply(e);
  const applyMs = performance.now() - started;
  raw = [];
  const treeBytes = heapUsed() - before;

  const paths = synthetic(Math.min(ENTRIES, 10_000)).map((e) => e.path_lower!);
  started = performance.now();
  let found = 0;
  for (let r = 0; r < 10; r++) for (const p of paths) if (tree.get(p)) found++;
  const statNs = ((performance.now() - started) * 1e6) / (10 * paths.length);
  started = performance.now();
  let listed = 0;
  for (let f = 0; f < 100; f++) listed += tree.get(`/projects/folder ${f}`)?.children?.size ?? 0;
  const listUs = ((performance.now() - started) * 1000) / 100;
  return {
    entries: tree.size, found, listed,
    cacheBytesPerEntry: Math.round(treeBytes / tree.size), baselineRawMapBytesPerEntry: Math.round(baselineBytes / ENTRIES),
    cacheMiB: +(treeBytes / 2 ** 20).toFixed(1), baselineMiB: +(baselineBytes / 2 ** 20).toFixed(1),
    applyMs: Math.round(applyMs), baselineApplyMs: Math.round(baselineApplyMs), statNs: +statNs.toFixed(0), listFolderOf100Us: +listUs.toFixed(1),
  };
}

async function partB(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'dropftp-syncbench-'));
  const box = await startLocalBox({ dataDir: dir });
  try {
    const account = await box.createAccount('bench');
    const sdk = sdkFor(box, account);
    let started = performance.now();
    for (let i = 0; i < FILES; i += 32) {
      await Promise.all(Array.from({ length: Math.min(32, FILES - i) }, (_, k) => sdk.filesUpload({ path: `/D${(i + k) % 50}/f${i + k}.txt`, contents: Buffer.from(`${i + k}`) })));
    }
    const populateMs = performance.now() - started;
    started = performance.now();
    const server = await serverTree(sdk);
    const baselineListMs = performance.now() - started;
    const cache = new DirectoryCache({ apiUrl: box.url, accessToken: account.accessToken }).start();
    started = performance.now();
    await cache.ready;
    const syncMs = performance.now() - started;
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      await sdk.filesUpload({ path: `/Latency/${i}.txt`, contents: Buffer.from('x') });
      const t0 = performance.now();
      while (!cache.stat(`/latency/${i}.txt`)) await new Promise((r) => setTimeout(r, 1));
      latencies.push(performance.now() - t0);
    }
    latencies.sort((a, b) => a - b);
    const stats = cache.stats();
    await cache.close();
    return {
      files: FILES, entries: stats.entries, serverEntries: server.size, populateMs: Math.round(populateMs),
      initialSyncMs: Math.round(syncMs), baselineSdkRecursiveListMs: Math.round(baselineListMs), requests: stats.requests,
      uploadToVisibleMs: { p50: +latencies[10]!.toFixed(1), max: +latencies.at(-1)!.toFixed(1) },
    };
  } finally {
    await box.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const a = partA();
console.log('in-process tree:', a);
const b = await partB();
console.log('local box:', b);
const outDir = fileURLToPath(new URL('./results/', import.meta.url));
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'sync-scale.json'), `${JSON.stringify({ date: new Date().toISOString(), node: process.version, tree: a, localBox: b }, null, 2)}\n`);
