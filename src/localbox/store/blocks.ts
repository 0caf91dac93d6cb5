// Content-addressed block files: blocks/<aa>/<sha256 hex>, each at most 4 MiB, written once through a
// temp file and an atomic rename, never modified afterwards. Runs in the local box child.
// Invariants: a block file is complete or absent; a hash in use by an unfinished write is pinned and
// never collected; anything not referenced by the database and not pinned is garbage (gc()).

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, unlinkSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BLOCK_BYTES } from '../types.ts';
import { BlockHash, bothWaits, hashBackpressure } from './block-hash.ts';
import { BlockReader } from './block-reader.ts';
import { WriteQueue } from './write-queue.ts';
import type { BlockRef } from './block-ref.ts';

export type { BlockRef } from './block-ref.ts';

export class BlockStore {
  readonly dir: string;
  readonly tmpDir: string;
  private readonly pins = new Map<string, number>();
  private readonly openTmp = new Set<string>();
  private readonly subdirs = new Set<string>();

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'blocks');
    this.tmpDir = join(this.dir, 'tmp');
    mkdirSync(this.tmpDir, { recursive: true });
  }

  path(hash: string): string {
    return join(this.dir, hash.slice(0, 2), hash);
  }

  pin(hash: string): void {
    this.pins.set(hash, (this.pins.get(hash) ?? 0) + 1);
  }

  unpin(hash: string): void {
    const n = (this.pins.get(hash) ?? 0) - 1;
    if (n <= 0) this.pins.delete(hash);
    else this.pins.set(hash, n);
  }

  /** A writer that cuts a byte stream into blocks. Its refs stay pinned until release(). */
  writer(): BlockWriter {
    return new BlockWriter(this);
  }

  /**
   * A reader of bytes [start, end) of the file made of `blocks`; close() it when done. Its blocks
   * stay pinned until then: a download that started keeps its bytes when the file is deleted or
   * replaced meanwhile (as on Dropbox, where a revision being read stays readable). Unpinned, a
   * collection while a slow download ran removed its remaining blocks, and the download ended short.
   */
  reader(blocks: BlockRef[], start: number, end: number): BlockReader {
    for (const b of blocks) this.pin(b.hash);
    return new BlockReader((hash) => this.path(hash), blocks, start, end, () => {
      for (const b of blocks) this.unpin(b.hash);
    });
  }

  /** Allocates a temp file name and marks it live so gc() leaves it alone. */
  tmpName(): string {
    const name = join(this.tmpDir, randomBytes(12).toString('hex'));
    this.openTmp.add(name);
    return name;
  }

  tmpDone(name: string): void {
    this.openTmp.delete(name);
  }

  /** Moves a finished temp file into place (or drops it if the block already exists). */
  async commitTmp(tmp: string, hash: string): Promise<void> {
    const dest = this.path(hash);
    try {
      await stat(dest);
      await unlink(tmp); // dedup: the block is already stored
    } catch {
      const sub = hash.slice(0, 2);
      if (!this.subdirs.has(sub)) {
        await mkdir(join(this.dir, sub), { recursive: true });
        this.subdirs.add(sub);
      }
      await rename(tmp, dest);
    }
    this.tmpDone(tmp);
  }

  hasSync(hash: string): boolean {
    return existsSync(this.path(hash));
  }

  /**
   * Moves the finished block file `src` into place as `hash` (or drops it if the block already
   * exists). Synchronous, so that it follows the database commit that references `hash` with no gap.
   */
  placeSync(src: string, hash: string): void {
    const dest = this.path(hash);
    if (existsSync(dest)) {
      unlinkSync(src);
      return;
    }
    const sub = hash.slice(0, 2);
    if (!this.subdirs.has(sub)) {
      mkdirSync(join(this.dir, sub), { recursive: true });
      this.subdirs.add(sub);
    }
    renameSync(src, dest);
  }

  /**
   * Deletes every block file not in `referenced` and not pinned, and every temp file not being
   * written. At start-up (nothing in flight) this removes all orphans left by a crash.
   */
  async gc(referenced: Set<string>, stillReferenced: (hash: string) => boolean): Promise<{ deletedBlocks: number; deletedTmp: number }> {
    let deletedBlocks = 0;
    let deletedTmp = 0;
    for (const name of await readdir(this.tmpDir)) {
      const p = join(this.tmpDir, name);
      if (this.openTmp.has(p)) continue;
      await rm(p, { force: true });
      deletedTmp++;
    }
    for (const sub of await readdir(this.dir)) {
      if (sub === 'tmp' || sub.length !== 2) continue;
      for (const hash of await readdir(join(this.dir, sub))) {
        if (referenced.has(hash) || this.pins.has(hash)) continue;
        // re-check and unlink in one synchronous step: no writer can pin the hash in between
        if (stillReferenced(hash)) continue;
        try {
          unlinkSync(join(this.dir, sub, hash));
          deletedBlocks++;
        } catch {
          // already gone
        }
      }
    }
    return { deletedBlocks, deletedTmp };
  }

  /** Total bytes of stored block files (for tests and space reports). */
  async storedBytes(): Promise<number> {
    let total = 0;
    for (const sub of await readdir(this.dir)) {
      if (sub === 'tmp' || sub.length !== 2) continue;
      for (const hash of await readdir(join(this.dir, sub))) total += (await stat(join(this.dir, sub, hash))).size;
    }
    return total;
  }
}

/**
 * Cuts a stream into 4 MiB blocks written as block files. write() queues the bytes and hands them to
 * the hashing thread at once and returns a promise only when the caller must wait (backpressure:
 * the disk or the hashing thread). finish() seals the last, short block and waits for every block
 * to be hashed and in place. Each block's hash is pinned from just before its file moves into place
 * until release(), which callers run after their database commit.
 */
export class BlockWriter {
  /** The blocks written, in order (complete once finish() resolved). */
  refs: BlockRef[] = [];
  bytes = 0;
  private readonly queue = new WriteQueue();
  private readonly tmps = new Set<string>(); // temp files not yet moved into place
  private readonly sealed: Promise<BlockRef>[] = [];
  private readonly pinned: string[] = [];
  private tmp = '';
  private hash: BlockHash | null = null;
  private curLen = 0;
  private released = false;

  constructor(private readonly store: BlockStore) {}

  /** `disposable`: the chunk's memory may be freed once written (WriteQueue.write). */
  write(chunk: Buffer, disposable = false): Promise<void> | undefined {
    let off = 0;
    while (off < chunk.length) {
      if (!this.hash) this.startBlock();
      const take = Math.min(chunk.length - off, BLOCK_BYTES - this.curLen);
      const part = off === 0 && take === chunk.length ? chunk : chunk.subarray(off, off + take);
      this.hash!.update(part);
      this.queue.write(part, disposable && part === chunk);
      this.curLen += take;
      this.bytes += take;
      off += take;
      if (this.curLen === BLOCK_BYTES) this.sealBlock();
    }
    return bothWaits(this.queue.backpressure(), hashBackpressure());
  }

  /** Copies an existing stored block in as the beginning of the current block (session continuation). */
  async writeFromBlock(ref: BlockRef): Promise<void> {
    const data = await readFile(this.store.path(ref.hash));
    if (data.length !== ref.len) throw new Error(`block ${ref.hash} holds ${data.length} bytes, expected ${ref.len}`);
    await this.write(data);
  }

  async finish(): Promise<BlockRef[]> {
    if (this.hash && this.curLen > 0) this.sealBlock();
    await this.queue.drain();
    this.queue.end();
    this.refs = await Promise.all(this.sealed);
    return this.refs;
  }

  /** Drops the pins (after the database references the blocks, or after a failure). */
  release(): void {
    this.queue.end();
    if (this.released) return;
    this.released = true;
    for (const h of this.pinned) this.store.unpin(h);
  }

  /** Abandons unwritten bytes and temp files; sealed blocks already in place stay until gc (they may be shared). */
  async abort(): Promise<void> {
    this.hash?.dispose();
    this.hash = null;
    await this.queue.abandon();
    for (const tmp of this.tmps) {
      await rm(tmp, { force: true });
      this.store.tmpDone(tmp);
    }
    this.tmps.clear();
    this.release();
  }

  private startBlock(): void {
    this.tmp = this.store.tmpName();
    this.tmps.add(this.tmp);
    this.queue.open(this.tmp, 'w');
    this.hash = new BlockHash();
    this.curLen = 0;
  }

  private sealBlock(): void {
    const hashed = this.hash!.digest();
    const len = this.curLen;
    const tmp = this.tmp;
    const ref = hashed.then((hash) => ({ hash, len }));
    ref.catch(() => {}); // a failure reaches finish() through the queue (below) first
    this.sealed.push(ref);
    this.hash = null;
    this.curLen = 0;
    this.queue.close(async () => {
      const hash = await hashed;
      // pinned before it is in place: gc() never takes a block between its rename and the commit
      if (!this.released) {
        this.store.pin(hash);
        this.pinned.push(hash);
      }
      await this.store.commitTmp(tmp, hash);
      this.tmps.delete(tmp);
    });
  }
}
