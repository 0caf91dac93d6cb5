// Reads a byte range of a stored file (its blocks, in order) into buffers lent from a shared pool:
// no allocation per chunk, so thousands of downloads do not keep the garbage collector busy. Runs in
// the local box child's main thread (reads, and the opens and closes of block files, on libuv's
// pool taking turns with writes, or inline when that overtakes no one: io-slots.ts).
// Invariants: every read is sized from the readers open at that moment, the same for all of them
// (a download that started early gets no bigger share than one that started late); at most
// lentMax() buffers of one reader are out at once (that is the download's backpressure); a buffer
// goes back to the pool (buffer-pool.ts) only through release(), after the socket took its bytes.

import { close, closeSync, open, openSync, read, readSync } from 'node:fs';
import type { BlockRef } from './block-ref.ts';
import { giveBuffer, takeBuffer } from './buffer-pool.ts';
import { fileOpWithIoSlot, readWithIoSlot } from './io-slots.ts';

const openInPool = (path: string): Promise<number> =>
  new Promise((resolve, reject) => open(path, 'r', (err, fd) => (err ? reject(err) : resolve(fd))));
const readInPool = (fd: number, buf: Buffer, at: number, n: number, pos: number): Promise<number> =>
  new Promise((resolve, reject) => read(fd, buf, at, n, pos, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead))));
/** Closes a read-only descriptor, inline when that overtakes no one, else on the pool; never rejects (closing a read-only fd loses nothing). */
function closeBlock(fd: number): Promise<void> {
  return fileOpWithIoSlot(
    () => closeSync(fd),
    () => new Promise<void>((resolve) => close(fd, () => resolve())),
  ).catch(() => {});
}

// All downloads together keep about READ_BUDGET_BYTES in lent buffers: one download reads 1 MiB at
// a time and keeps up to 4 of them in its socket's queue (the socket never waits for the disk, even
// across a block boundary); thousands read 64 KiB at a time, two each. Sized per read, not per
// reader: sizes fixed when a reader opened gave the first of 1,000 downloads 1 MiB reads and the
// last 64 KiB ones, and each read is one turn in io-slots.ts's round robin (issue 15, Jain).
const READ_BUDGET_BYTES = 64 * 1024 * 1024;
const MIN_CHUNK_BYTES = 64 * 1024;
const MAX_CHUNK_BYTES = 1024 * 1024;
const MIN_LENT = 2;
const MAX_LENT = 4;
let activeReaders = 0;

/** Bytes per read now: the largest power of two that keeps the budget with every open reader. */
export function readChunkBytes(): number {
  let b = MAX_CHUNK_BYTES;
  while (b > MIN_CHUNK_BYTES && b * MIN_LENT * activeReaders > READ_BUDGET_BYTES) b /= 2;
  return b;
}

/** Buffers one reader may have lent now. */
function lentMax(chunk: number): number {
  return Math.max(MIN_LENT, Math.min(MAX_LENT, Math.floor(READ_BUDGET_BYTES / (chunk * Math.max(1, activeReaders)))));
}

export class BlockReader {
  private lent = 0;
  private waiter: (() => void) | null = null;
  private fd: number | null = null;
  /** The close of the last block done with, if it went to the pool (next() does not wait for it; close() does). */
  private closing: Promise<void> = Promise.resolve();
  private idx = 0; // block holding `pos`
  private blockStart = 0; // file offset of block idx
  private pos: number;
  private cancelled = false;
  private closed = false;
  /** Whether next() has run: its first open and read go before the round robin (io-slots.ts). */
  private started = false;

  constructor(
    private readonly pathOf: (hash: string) => string,
    private readonly blocks: BlockRef[],
    start: number,
    private readonly end: number,
    /** Called once, at close() (the store unpins the blocks). */
    private readonly onClose: () => void = () => {},
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
    let chunk = readChunkBytes();
    while (this.lent >= lentMax(chunk) && !this.cancelled) {
      await new Promise<void>((resolve) => (this.waiter = resolve));
      chunk = readChunkBytes();
    }
    if (this.cancelled || this.pos >= this.end) return null;
    const block = this.blocks[this.idx];
    if (!block) throw new Error(`file shorter than its size: nothing at byte ${this.pos}`);
    const first = !this.started;
    this.started = true;
    if (this.fd === null) {
      const path = this.pathOf(block.hash);
      this.fd = await fileOpWithIoSlot(
        () => openSync(path, 'r'),
        () => openInPool(path),
        first,
      );
    }
    const blockEnd = this.blockStart + block.len;
    const n = Math.min(chunk, blockEnd - this.pos, this.end - this.pos);
    const buf = takeBuffer(chunk);
    this.lent++;
    for (let got = 0; got < n; ) {
      const fd = this.fd;
      const at = this.pos - this.blockStart + got;
      const bytesRead = await readWithIoSlot(
        () => readSync(fd, buf, got, n - got, at),
        () => readInPool(fd, buf, got, n - got, at),
        first && got === 0,
      );
      if (bytesRead === 0) throw new Error(`block ${block.hash} is shorter than ${block.len} bytes`);
      got += bytesRead;
    }
    this.pos += n;
    if (this.pos >= blockEnd) {
      const fd = this.fd;
      this.fd = null;
      this.blockStart = blockEnd;
      this.idx++;
      this.closing = this.closing.then(() => closeBlock(fd));
    }
    return buf.subarray(0, n);
  }

  /** Gives back a buffer from next() once its bytes are no longer needed. */
  release(buf: Buffer): void {
    this.lent--;
    giveBuffer(buf);
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
    this.onClose();
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) this.closing = this.closing.then(() => closeBlock(fd));
    await this.closing;
  }
}
