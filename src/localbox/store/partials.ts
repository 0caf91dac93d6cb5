// Partial blocks of sequential upload sessions: partial/<session key>-<block index>, a block being
// filled across appends. Bytes are written once, where they will stay, and hashed as they arrive;
// the SHA-256 state of each partial is kept between appends (in the hashing thread, block-hash.ts;
// rebuilt from the file when it was lost), with the digest of its bytes so far once the thread gave
// it, and a block once whole (or at close/commit) is renamed into the block store.
// Runs in the local box child. Invariants: the first `len` bytes of a partial file (len: its
// session_partial row) are the block's bytes; bytes past `len` are leftovers of a failed append and
// are cut before the next write; a partial file moves into blocks/ only after the database references
// its hash (so a crash in between leaves it here, and recover() moves it at start-up).

import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readSync, truncateSync, unlinkSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { BlockHash } from './block-hash.ts';
import type { BlockStore } from './blocks.ts';

/** Hash states kept between appends; beyond this, the least recently used are rebuilt from disk. */
const CACHE_ENTRIES = 4096;

export class PartialBlocks {
  readonly dir: string;
  private readonly hashes = new Map<string, { hasher: BlockHash; len: number; hex: string | null }>();

  constructor(
    dataDir: string,
    private readonly blocks: BlockStore,
  ) {
    this.dir = join(dataDir, 'partial');
    mkdirSync(this.dir, { recursive: true });
  }

  /** The file name of block `idx` of session `sessionId`. */
  static nameOf(sessionId: string, idx: number): string {
    return `${sessionId.slice(sessionId.indexOf(':') + 1)}-${idx}`;
  }

  private path(name: string): string {
    return join(this.dir, name);
  }

  /** The path of partial `name` (new partials are written there through a WriteQueue). */
  pathOf(name: string): string {
    return this.path(name);
  }

  /**
   * Opens a partial holding `len` valid bytes to append to: cut to exactly them, with the SHA-256
   * state of those bytes (kept from the last append, or rebuilt from the file).
   */
  async resume(name: string, len: number): Promise<{ fh: FileHandle; hasher: BlockHash }> {
    const fh = await open(this.path(name), 'r+');
    try {
      const cached = this.hashes.get(name);
      this.hashes.delete(name); // it advances as bytes arrive; put back only by keep()
      const usable = cached && cached.len === len && cached.hasher.live;
      if (cached && !usable) cached.hasher.dispose();
      const hasher = usable ? cached.hasher : await rehash(fh, len);
      try {
        if ((await fh.stat()).size !== len) await fh.truncate(len);
      } catch (err) {
        hasher.dispose();
        throw err;
      }
      return { fh, hasher };
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
  }

  /**
   * Remembers a partial's hash state after its new length was committed to the database, and asks
   * for the digest of its bytes so far (what sealing it needs, synchronously, if no append follows).
   */
  keep(name: string, hasher: BlockHash, len: number): void {
    if (this.hashes.size >= CACHE_ENTRIES) this.forget(this.hashes.keys().next().value!);
    this.forget(name);
    const entry = { hasher, len, hex: null as string | null };
    this.hashes.set(name, entry);
    hasher.peek().then(
      (hex) => void (entry.hex = hex),
      () => {}, // its thread died: digestSync() reads the file instead
    );
  }

  /** Drops a kept hash state. */
  private forget(name: string): void {
    const cached = this.hashes.get(name);
    if (!cached) return;
    this.hashes.delete(name);
    cached.hasher.dispose();
  }

  /** SHA-256 of a partial's first `len` bytes, and the file cut to exactly them (before sealing it). */
  digestSync(name: string, len: number): string {
    const cached = this.hashes.get(name);
    this.forget(name);
    const p = this.path(name);
    truncateSync(p, len);
    if (cached && cached.len === len && cached.hex !== null) return cached.hex;
    const fd = openSync(p, 'r');
    try {
      const buf = Buffer.allocUnsafe(len);
      let got = 0;
      while (got < len) {
        const n = readSync(fd, buf, got, len - got, got);
        if (n === 0) throw new Error(`partial block ${name} is shorter than ${len} bytes`);
        got += n;
      }
      return createHash('sha256').update(buf).digest('hex');
    } finally {
      closeSync(fd);
    }
  }

  /** Moves a whole (sealed) partial into the block store; call once the database references `hash`. */
  placeSync(name: string, hash: string): void {
    this.forget(name);
    this.blocks.placeSync(this.path(name), hash);
  }

  /** Deletes a partial that no row references any more (or an abandoned new one). */
  discardSync(name: string): void {
    this.forget(name);
    try {
      unlinkSync(this.path(name));
    } catch {
      // already gone
    }
  }

  /**
   * At start-up (nothing in flight): a partial that `live` does not list was either sealed just
   * before a crash (its hash is referenced but not yet in blocks/: moved there) or abandoned (deleted).
   */
  recover(live: Set<string>, referenced: (hash: string) => boolean): { moved: number; deleted: number } {
    let moved = 0;
    let deleted = 0;
    for (const name of readdirSync(this.dir)) {
      if (live.has(name)) continue;
      const p = this.path(name);
      let hash: string | null = null;
      try {
        const fd = openSync(p, 'r');
        try {
          const h = createHash('sha256');
          const buf = Buffer.allocUnsafe(1 << 20);
          for (let pos = 0; ; ) {
            const n = readSync(fd, buf, 0, buf.length, pos);
            if (n === 0) break;
            h.update(buf.subarray(0, n));
            pos += n;
          }
          hash = h.digest('hex');
        } finally {
          closeSync(fd);
        }
      } catch {
        hash = null;
      }
      if (hash !== null && referenced(hash) && !this.blocks.hasSync(hash)) {
        this.blocks.placeSync(p, hash);
        moved++;
      } else {
        this.discardSync(name);
        deleted++;
      }
    }
    return { moved, deleted };
  }
}

async function rehash(fh: FileHandle, len: number): Promise<BlockHash> {
  const hasher = new BlockHash();
  try {
    const buf = Buffer.allocUnsafe(Math.min(len, 1 << 20));
    for (let pos = 0; pos < len; ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, len - pos), pos);
      if (bytesRead === 0) throw new Error(`partial block is shorter than ${len} bytes`);
      hasher.update(buf.subarray(0, bytesRead)); // copied: buf is read into again
      pos += bytesRead;
    }
    return hasher;
  } catch (err) {
    hasher.dispose();
    throw err;
  }
}
