// Reads a byte range of a stored file (its blocks, in order) into buffers lent from a shared pool:
// no allocation per chunk, so thousands of downloads do not keep the garbage collector busy. Runs in
// the local box child's main thread (reads on libuv's pool). Invariants: at most LENT_MAX buffers of
// one reader are out at once (that is the download's backpressure); a buffer goes back to the pool
// only through release(), after its bytes were handed to the socket; the pool keeps at most
// POOL_MAX_BYTES of free buffers.

import { open, type FileHandle } from 'node:fs/promises';
import type { BlockRef } from './block-ref.ts';

const LENT_MAX = 2;
const POOL_MAX_BYTES = 64 * 1024 * 1024;
const free = new Map<number, ArrayBuffer[]>();
let freeBytes = 0;
let activeReaders = 0;

/** Bytes per read: large for a few downloads, smaller as they multiply (memory stays bounded). */
function chunkBytes(): number {
  return activeReaders <= 8 ? 1024 * 1024 : activeReaders <= 64 ? 256 * 1024 : 64 * 1024;
}

function take(size: number): Buffer {
  const ab = free.get(size)?.pop();
  if (ab) {
    freeBytes -= size;
    return Buffer.from(ab);
  }
  return Buffer.allocUnsafeSlow(size);
}

function give(ab: ArrayBuffer): void {
  if (freeBytes + ab.byteLength > POOL_MAX_BYTES) return;
  let list = free.get(ab.byteLength);
  if (!list) free.set(ab.byteLength, (list = []));
  list.push(ab);
  freeBytes += ab.byteLength;
}

export class BlockReader {
  private readonly chunk = chunkBytes();
  private lent = 0;
  private waiter: (() => void) | null = null;
  private fh: FileHandle | null = null;
  private idx = 0; // block holding `pos`
  private blockStart = 0; // file offset of block idx
  private pos: number;
  private cancelled = false;
  private closed = false;

  constructor(
    private readonly pathOf: (hash: string) => string,
    private readonly blocks: BlockRef[],
    start: number,
    private readonly end: number,
  ) {
    activeReaders++;
    this.pos = start;
    while (this.idx < blocks.length && this.blockStart + blocks[this.idx]!.len <= start) {
      this.blockStart += blocks[this.idx]!.len;
      this.idx++;
    }
  }

  /** The next bytes in a lent buffer (give it back with release()); null at the end or once cancelled. */
  async next(): Promise<Buffer | null> {
    while (this.lent >= LENT_MAX && !this.cancelled) await new Promise<void>((resolve) => (this.waiter = resolve));
    if (this.cancelled || this.pos >= this.end) return null;
    const block = this.blocks[this.idx];
    if (!block) throw new Error(`file shorter than its size: nothing at byte ${this.pos}`);
    if (!this.fh) this.fh = await open(this.pathOf(block.hash), 'r');
    const blockEnd = this.blockStart + block.len;
    const n = Math.min(this.chunk, blockEnd - this.pos, this.end - this.pos);
    const buf = take(this.chunk);
    this.lent++;
    for (let got = 0; got < n; ) {
      const { bytesRead } = await this.fh.read(buf, got, n - got, this.pos - this.blockStart + got);
      if (bytesRead === 0) throw new Error(`block ${block.hash} is shorter than ${block.len} bytes`);
      got += bytesRead;
    }
    this.pos += n;
    if (this.pos >= blockEnd) {
      const fh = this.fh;
      this.fh = null;
      this.blockStart = blockEnd;
      this.idx++;
      await fh.close();
    }
    return buf.subarray(0, n);
  }

  /** Gives back a buffer from next() once its bytes are no longer needed. */
  release(buf: Buffer): void {
    this.lent--;
    give(buf.buffer as ArrayBuffer);
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Ends next()'s wait (the client went away); lent buffers still in a socket are left to it. */
  cancel(): void {
    this.cancelled = true;
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    activeReaders--;
    const fh = this.fh;
    this.fh = null;
    await fh?.close();
  }
}
