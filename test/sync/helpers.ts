// Test helpers for the directory cache: a local box in a temp dir, an SDK client for "changes made
// elsewhere", a cache on the same account, and comparisons against the server's own listing.
// Test main thread.

import { Dropbox } from 'dropbox';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalBox, type LocalBox, type LocalBoxAccount } from '../../src/localbox/index.ts';
import { DirectoryCache, type CacheEntry, type DirectoryCacheOptions } from '../../src/sync/index.ts';

export interface Harness {
  box: LocalBox;
  account: LocalBoxAccount;
  sdk: Dropbox;
  caches: DirectoryCache[];
  cache(options?: Partial<DirectoryCacheOptions>, account?: LocalBoxAccount): DirectoryCache;
  cleanup(): Promise<void>;
}

export function sdkFor(box: LocalBox, account: LocalBoxAccount): Dropbox {
  return new Dropbox({
    accessToken: account.accessToken,
    fetch: (url: string, init: RequestInit) => fetch(url.replace(/^https:\/\/[^/]+/, box.url), init),
  } as ConstructorParameters<typeof Dropbox>[0]);
}

export async function harness(): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'dropftp-sync-'));
  const box = await startLocalBox({ dataDir: dir });
  const account = await box.createAccount('alice');
  const caches: DirectoryCache[] = [];
  return {
    box,
    account,
    sdk: sdkFor(box, account),
    caches,
    cache(options = {}, acc = account) {
      const c = new DirectoryCache({ apiUrl: box.url, accessToken: acc.accessToken, name: acc.name, minBackoffMs: 50, ...options }).start();
      caches.push(c);
      return c;
    },
    async cleanup() {
      await Promise.all(caches.map((c) => c.close()));
      await box.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}


type Row = { tag: string; name: string; rev: string | null; size: number; hash: string | null; id: string };

/** The server's own recursive listing, keyed by path_lower. */
export async function serverTree(sdk: Dropbox): Promise<Map<string, Row>> {
  const out = new Map<string, Row>();
  let res = await sdk.filesListFolder({ path: '', recursive: true, limit: 2000 });
  for (;;) {
    for (const e of res.result.entries as unknown as Record<string, unknown>[]) {
      const tag = e['.tag'] as string;
      out.set(e.path_lower as string, {
        tag,
        name: e.name as string,
        rev: tag === 'file' ? (e.rev as string) : null,
        size: tag === 'file' ? (e.size as number) : 0,
        hash: tag === 'file' ? (e.content_hash as string) : null,
        id: e.id as string,
      });
    }
    if (!res.result.has_more) return out;
    res = await sdk.filesListFolderContinue({ cursor: res.result.cursor });
  }
}

/** The cache's visible tree, walked with list() from the root. */
export function cacheTree(cache: DirectoryCache): Map<string, Row> {
  const out = new Map<string, Row>();
  const stack = [''];
  while (stack.length > 0) {
    for (const e of cache.list(stack.pop()!) ?? []) {
      out.set(e.pathLower, row(e));
      if (e.tag === 'folder') stack.push(e.pathLower);
    }
  }
  return out;
}

function row(e: CacheEntry): Row {
  return { tag: e.tag, name: e.name, rev: e.rev, size: e.size, hash: e.contentHash, id: e.id };
}

export function sameTrees(a: Map<string, Row>, b: Map<string, Row>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (!w || JSON.stringify(v) !== JSON.stringify(w)) return false;
  }
  return true;
}

export function diffTrees(a: Map<string, Row>, b: Map<string, Row>): string {
  const lines: string[] = [];
  for (const [k, v] of a) if (JSON.stringify(v) !== JSON.stringify(b.get(k))) lines.push(`${k}: ${JSON.stringify(v)} vs ${JSON.stringify(b.get(k))}`);
  for (const k of b.keys()) if (!a.has(k)) lines.push(`${k}: missing vs ${JSON.stringify(b.get(k))}`);
  return lines.slice(0, 10).join('\n');
}
