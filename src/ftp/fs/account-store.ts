// One storage account as the FTP file systems see it: metadata reads served from the account's
// directory cache (src/sync, one per account, shared by every session and mount), falling back to
// the RPC client while the cache is still listing or when it has not seen a path yet; metadata
// writes through the RPC client, each applied to the cache at once (own writes show in the next
// listing, before the change feed reports them). Main thread. Invariants: a path is a Dropbox path
// ('' is the root); a cache miss is confirmed with get_metadata before answering "not found" (a
// file added elsewhere a moment ago is never refused); nothing here checks permissions.

import { DropftpError } from '../../errors.ts';
import type { DropboxEntry, DropboxRpc } from '../../dropbox/rpc.ts';
import type { CacheEntry, DirectoryCache, RawMetadata } from '../../sync/index.ts';
import type { FileMetadata } from '../../transfer/task-wire.ts';
import type { AsideEntry, AsideJournal } from './aside-journal.ts';

/** Committed upload metadata as the transfer engine returns it (Dropbox FileMetadata). */
export type CommittedFile = FileMetadata;

export interface StoreStats {
  cacheHits: number;
  rpcReads: number;
}

function fromCache(entry: CacheEntry): DropboxEntry {
  return {
    tag: entry.tag,
    name: entry.name,
    pathLower: entry.pathLower,
    pathDisplay: '',
    id: entry.id,
    size: entry.size,
    modified: entry.tag === 'file' && entry.clientModifiedMs !== null ? new Date(entry.clientModifiedMs) : null,
    rev: entry.rev,
  };
}

function lastName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export class AccountStore {
  readonly name: string;
  readonly rpc: DropboxRpc;
  readonly cache: DirectoryCache | null;
  readonly stats: StoreStats = { cacheHits: 0, rpcReads: 0 };
  readonly #ensured = new Map<string, Promise<void>>();

  /** Where moves aside are journaled (aside-journal.ts); null: not journaled (a crash may strand one). */
  readonly asides: AsideJournal | null;

  constructor(name: string, rpc: DropboxRpc, cache: DirectoryCache | null, asides: AsideJournal | null = null) {
    this.name = name;
    this.rpc = rpc;
    this.asides = asides;
    this.cache = cache;
  }

  #ready(): DirectoryCache | null {
    return this.cache?.isReady ? this.cache : null;
  }

  /** The entry at `path`, or null when there is none. Never called for the root (''). */
  async stat(path: string): Promise<DropboxEntry | null> {
    const cache = this.#ready();
    const cached = cache?.stat(path);
    if (cached) {
      this.stats.cacheHits++;
      return fromCache(cached);
    }
    this.stats.rpcReads++;
    try {
      return await this.rpc.getMetadata(path);
    } catch (err) {
      if (err instanceof DropftpError && err.code === 'DROPFTP_ERR_NOT_FOUND') return null;
      throw err;
    }
  }

  /** What the directory cache holds at `path`, without a call: null when it holds nothing (or is not ready). */
  cached(path: string): DropboxEntry | null {
    const cached = this.#ready()?.stat(path);
    if (!cached) return null;
    this.stats.cacheHits++;
    return fromCache(cached);
  }

  /** The entries of a folder (order unspecified); throws NOT_FOUND / NOT_A_FOLDER. */
  async list(path: string): Promise<DropboxEntry[]> {
    const cache = this.#ready();
    const cached = cache?.list(path);
    if (cached) {
      this.stats.cacheHits++;
      return cached.map(fromCache);
    }
    this.stats.rpcReads++;
    return this.rpc.listFolder(path);
  }

  async hasChildren(path: string): Promise<boolean> {
    // Deciding to delete: ask Dropbox itself, a stale cache must never let RMD remove a full folder.
    return this.rpc.hasChildren(path);
  }

  async createFolder(path: string): Promise<void> {
    // The id goes into the cache too: MLST/MLSD's unique fact is made from it (RFC 3659 7.5.2).
    const id = await this.rpc.createFolder(path);
    this.cache?.applyLocalWrite({ '.tag': 'folder', name: lastName(path), path_lower: path.toLowerCase(), path_display: path, id });
  }

  /** Creates the folder unless it exists (user roots, mount targets); once per process and path. */
  ensureFolder(path: string): Promise<void> {
    if (path === '') return Promise.resolve();
    const key = path.toLowerCase();
    let running = this.#ensured.get(key);
    if (!running) {
      running = (async () => {
        const entry = await this.stat(path);
        if (entry?.tag === 'folder') return;
        if (entry) throw new DropftpError('DROPFTP_ERR_CONFIG', `${this.name}:${path} is a file, not a folder`);
        await this.createFolder(path).catch((err: unknown) => {
          if (!(err instanceof DropftpError && err.code === 'DROPFTP_ERR_EXISTS')) throw err;
        });
      })();
      running.catch(() => this.#ensured.delete(key));
      this.#ensured.set(key, running);
    }
    return running;
  }

  async delete(path: string, parentRev?: string): Promise<void> {
    await this.rpc.delete(path, parentRev);
    this.cache?.applyLocalDelete(path);
  }

  /** move_v2; `source` is the moved entry as read before the move. */
  async move(from: string, to: string, source: DropboxEntry | null): Promise<void> {
    await this.rpc.move(from, to);
    if (!this.cache) return;
    if (!source) {
      this.cache.applyLocalDelete(from);
      this.cache.refresh();
      return;
    }
    const moved: RawMetadata = { '.tag': source.tag, name: lastName(to), path_lower: to.toLowerCase(), path_display: to, id: source.id };
    if (source.tag === 'file') {
      Object.assign(moved, { size: source.size, rev: source.rev ?? undefined, client_modified: source.modified?.toISOString() });
    }
    this.cache.applyLocalMove(from, moved);
  }

  /**
   * Moves `entry` from `path` to the hidden name `aside`, journaled first: until settleAside(), a
   * gateway killed meanwhile puts it back at its next start (replayAsides).
   */
  async moveAside(path: string, aside: string, entry: DropboxEntry): Promise<AsideEntry> {
    const record: AsideEntry = { account: this.name, aside, path, tag: entry.tag };
    await this.asides?.record(record);
    try {
      await this.move(path, aside, entry);
    } catch (err) {
      await this.asides?.settle(record).catch(() => {});
      throw err;
    }
    return record;
  }

  /** The operation that moved `record` aside did not go through: put `entry` back (putBack), then forget it. */
  async putBackAside(record: AsideEntry, entry: DropboxEntry): Promise<void> {
    await this.putBack(record.aside, record.path, entry);
    await this.settleAside(record);
  }

  /** The operation that moved `record` aside is over (done, or put back): forget it. */
  async settleAside(record: AsideEntry): Promise<void> {
    // Not written: the entry stays in the journal, and the next start finds nothing aside or puts it back.
    await this.asides?.settle(record).catch(() => {});
  }

  /**
   * What was moved aside goes back to `path`. Something committed at `path` meanwhile is newer and
   * stays: a file there replaces the one aside (as that commit would have replaced it had nothing
   * been moved), a folder there takes the children of the one aside, merged the same way.
   */
  async putBack(aside: string, path: string, entry: DropboxEntry): Promise<void> {
    try {
      return await this.move(aside, path, entry);
    } catch (err) {
      if (!(err instanceof DropftpError && err.code === 'DROPFTP_ERR_EXISTS')) throw err;
    }
    const there = await this.rpc.getMetadata(path);
    if (entry.tag === 'folder' && there.tag === 'folder') {
      for (const child of await this.rpc.listFolder(aside)) {
        await this.putBack(`${aside}/${child.name}`, `${path}/${child.name}`, child);
      }
    }
    await this.delete(aside);
  }

  /**
   * Puts back what a previous run moved aside and never settled (it was killed in between): the
   * operation did not finish, so its entry goes back where it was (or, where a newer one took its
   * name, gives way to it). An entry that fails stays journaled for the next start.
   */
  async replayAsides(warn: (message: string) => void = () => {}): Promise<number> {
    let replayed = 0;
    for (const record of this.asides?.pending(this.name) ?? []) {
      try {
        let aside: DropboxEntry | null = null;
        try {
          aside = await this.rpc.getMetadata(record.aside);
        } catch (err) {
          if (!(err instanceof DropftpError && err.code === 'DROPFTP_ERR_NOT_FOUND')) throw err;
        }
        if (aside) {
          await this.putBack(record.aside, record.path, aside);
          replayed++;
        }
        await this.asides!.settle(record);
      } catch (err) {
        warn(`${this.name}:${record.aside} (moved aside from ${record.path}) not put back yet: ${(err as Error).message}`);
      }
    }
    return replayed;
  }

  /** The transfer engine committed `file`: show it now. */
  noteUpload(file: CommittedFile): void {
    this.cache?.applyLocalWrite({ ...file, '.tag': 'file' });
  }
}
