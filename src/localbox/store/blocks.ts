// Content-addressed block files: blocks/<aa>/<sha256 hex>, each at most 4 MiB, written once through a
// temp file and an atomic rename, never modified afterwards. Runs in the local box child.
// Invariants: a block file is complete or absent; a hash in use by an unfinished write is pinned and
// never collected; anything not referenced by the database and not pinned is garbage (gc()).

import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, renameSync, unlinkSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { BLOCK_BYTES } from '../types.ts';

export interface BlockRef {
  hash: string; // sha256 hex of the block's bytes
  len: number; // bytes, 1..BLOCK_BYTES
}

// Memory per transfer shrinks as transfers multiply, so that 1,000 clients stay within bounds while
// one stream still gets large reads (sendfile-like throughput).
let activeReads = 0;
let activeWriters = 0;
const readChunkBytes = (): number => (activeReads <= 8 ? 1024 * 1024 : activeReads <= 64 ? 256 * 1024 : 64 * 1024);
const writeBatchBytes = (): number => (activeWriters <= 8 ? 512 * 1024 : 64 * 1024);

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

  /** Streams bytes [start, end) of the file made of `blocks`. */
  async *read(blocks: BlockRef[], start: number, end: number): AsyncGenerator<Buffer> {
    activeReads++;
    try {
      yield* this.readBlocks(blocks, start, end);
    } finally {
      activeReads--;
    }
  }

  private async *readBlocks(blocks: BlockRef[], start: number, end: number): AsyncGenerator<Buffer> {
    let blockStart = 0;
    for (const b of blocks) {
      const highWaterMark = readChunkBytes();
      const blockEnd = blockStart + b.len;
      if (blockEnd > start && blockStart < end) {
        const from = Math.max(start, blockStart) - blockStart;
        const to = Math.min(end, blockEnd) - blockStart; // exclusive
        for await (const chunk of createReadStream(this.path(b.hash), { start: from, end: to - 1, highWaterMark })) {
          yield chunk as Buffer;
        }
      }
      blockStart = blockEnd;
      if (blockStart >= end) break;
    }
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
 * Cuts a stream into 4 MiB blocks written as block files. write() resolves when the bytes are handed
 * to the file system (callers await it: that is the backpressure). finish() seals the last, short
 * block. Every produced hash is pinned until release(), which callers run after their database commit.
 */
export class BlockWriter {
  readonly refs: BlockRef[] = [];
  bytes = 0;
  private fh: FileHandle | null = null;
  private tmp = '';
  private hash: Hash | null = null;
  private curLen = 0;
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private released = false;
  private counted = false;

  constructor(private readonly store: BlockStore) {}

  async write(chunk: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      if (!this.hash) await this.startBlock();
      const take = Math.min(chunk.length - off, BLOCK_BYTES - this.curLen);
      const part = off === 0 && take === chunk.length ? chunk : chunk.subarray(off, off + take);
      this.hash!.update(part);
      this.pending.push(part);
      this.pendingLen += take;
      this.curLen += take;
      this.bytes += take;
      off += take;
      if (this.curLen === BLOCK_BYTES) await this.sealBlock();
      else if (this.pendingLen >= writeBatchBytes()) await this.flush();
    }
  }

  /** Copies an existing stored block in as the beginning of the current block (session continuation). */
  async writeFromBlock(ref: BlockRef): Promise<void> {
    for await (const chunk of this.store.read([ref], 0, ref.len)) await this.write(chunk);
  }

  async finish(): Promise<BlockRef[]> {
    if (this.hash && this.curLen > 0) await this.sealBlock();
    return this.refs;
  }

  /** Drops the pins (after the database references the blocks, or after a failure). */
  release(): void {
    if (this.counted) {
      this.counted = false;
      activeWriters--;
    }
    if (this.released) return;
    this.released = true;
    for (const r of this.refs) this.store.unpin(r.hash);
  }

  /** Abandons the current temp file; sealed blocks stay until gc (they may be shared). */
  async abort(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    this.hash = null;
    if (fh) {
      await fh.close().catch(() => {});
      await rm(this.tmp, { force: true });
      this.store.tmpDone(this.tmp);
    }
    this.release();
  }

  private async startBlock(): Promise<void> {
    if (!this.counted) {
      this.counted = true;
      activeWriters++;
    }
    this.tmp = this.store.tmpName();
    this.fh = await open(this.tmp, 'w');
    this.hash = createHash('sha256');
    this.curLen = 0;
  }

  private async flush(): Promise<void> {
    if (this.pendingLen === 0) return;
    const bufs = this.pending;
    this.pending = [];
    this.pendingLen = 0;
    await this.fh!.writev(bufs);
  }

  private async sealBlock(): Promise<void> {
    await this.flush();
    const hash = this.hash!.digest('hex');
    const len = this.curLen;
    await this.fh!.close();
    this.fh = null;
    this.hash = null;
    this.curLen = 0;
    this.store.pin(hash);
    this.refs.push({ hash, len });
    await this.store.commitTmp(this.tmp, hash);
  }
}
