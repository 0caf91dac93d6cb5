// DownloadStream: the Readable a RETR sends to its data socket, draining the transfer's ring.
// Main thread. Invariants: it ends ('end') only after the worker ended the ring cleanly AND its
// result (metadata, hash verified for whole-file reads) arrived and the bytes delivered add up to
// the file's size; every failure is a DropftpError rebuilt from the worker's wire error; destroying
// it before the end aborts the ring's consumer side, which the worker sees at its next step. In
// view mode (lendViews) its chunks are Buffers over ring memory, not copies: ring bytes are consumed
// only when release() returns them, and 'close' (after which the engine recycles the ring) waits
// until every lent view came back, so no pending socket write can read a recycled ring.

import { Readable } from 'node:stream';
import { STATE } from 'native-free-ringbuf';
import type { RingReader } from 'native-free-ringbuf';
import { DropftpError, fromWire } from '../errors.ts';
import { payloadCopies } from './copy-counts.ts';
import { ringCodeForError } from './ring-codes.ts';
import type { FileMetadata, TaskResult } from './task-wire.ts';

const CHUNK_BYTES = 64 * 1024;
/**
 * Largest view lent at once (and at most half the ring): releases come back in steps, so the worker
 * refills behind them. Each view is one socket write and one trip through both streams' machinery:
 * with quarter-ring views (64 KiB in the storms) a RETR-only storm of 100 x 10 MiB cost the main
 * thread 0.48-0.52 CPU-s/GiB, with half-ring views 0.44-0.47 (three alternating pairs).
 */
const MAX_VIEW_BYTES = 256 * 1024;
/** Longest a wait for a batch of ring data holds back the bytes already there. */
const BATCH_WAIT_MS = 20;

export class DownloadStream extends Readable {
  /** FileMetadata of the file read (set before 'end'). */
  metadata: FileMetadata | null = null;
  /** True when the whole file was hashed and matched its content_hash. */
  verified = false;
  bytesRead = 0;
  /** What the stream waits for, if anything: new ring data, lent views to come back, or the result. */
  private waitingFor: 'data' | 'release' | 'result' | null = null;
  private views = false;
  /** Bytes lent as views and not yet released (view mode). */
  private lentBytes = 0;
  private readonly maxViewBytes: number;
  /** Whether the next wait for data asks for a batch (off after a batch wait timed out). */
  private batching = true;
  /** _destroy's completion, held while views are still lent. */
  private afterLent: (() => void) | null = null;

  constructor(
    private readonly ring: RingReader,
    readonly result: Promise<TaskResult>,
    readonly account: string,
    readonly path: string,
    /** Where the read started (REST): the bytes delivered must reach exactly the file's size. */
    readonly offset = 0,
  ) {
    super({ highWaterMark: Math.min(CHUNK_BYTES, ring.capacity) });
    this.maxViewBytes = Math.max(1, Math.min(MAX_VIEW_BYTES, ring.capacity >>> 1));
    result.then((r) => {
      if (!r.ok && !this.destroyed) this.destroy(fromWire(r.error));
      else if (r.ok && r.kind === 'download') {
        this.metadata = r.metadata;
        this.verified = r.verified;
      }
    });
  }

  /**
   * Zero-copy: from now on every chunk is a view into ring memory that the consumer must hand back
   * with release(chunk.length), in the order received, once nothing reads it any more (a socket
   * write's callback). Only before the first chunk; returns false when it is too late.
   */
  lendViews(): boolean {
    if (this.bytesRead > 0 || this.destroyed) return false;
    this.views = true;
    return true;
  }

  /** Gives back the oldest `byteLength` bytes lent as views (view mode). */
  release(byteLength: number): void {
    this.lentBytes -= byteLength;
    if (this.afterLent) {
      if (this.lentBytes <= 0) {
        const done = this.afterLent;
        this.afterLent = null;
        done();
      }
      return;
    }
    if (this.destroyed) return;
    this.ring.consume(byteLength);
    // A wait for data stays valid (it counts the lent bytes at each check, and a release changes
    // neither them nor the readable bytes beyond them); only a wait for views to come back is over.
    if (this.waitingFor === 'release') {
      this.waitingFor = null;
      this._read();
    }
  }

  /** Stops the download; nothing more is read; the stream errors with DROPFTP_ERR_ABORTED. */
  abort(reason = 'download aborted'): void {
    this.destroy(new DropftpError('DROPFTP_ERR_ABORTED', reason));
  }

  override _read(): void {
    if (this.waitingFor !== null) return;
    if (this.views) this.lend();
    else this.copy();
  }

  private copy(): void {
    for (;;) {
      // Never more than the highWaterMark buffered here: the rest waits in the ring (bounded memory).
      const room = Math.max(1, this.readableHighWaterMark - this.readableLength);
      const available = Math.min(this.ring.readable(), room);
      if (available > 0) {
        const chunk = Buffer.allocUnsafe(available < CHUNK_BYTES ? available : CHUNK_BYTES);
        const n = this.ring.read(chunk);
        if (n === 0) return; // our own side was aborted
        this.bytesRead += n;
        payloadCopies.retrBytes += n;
        payloadCopies.retrCopiedBytes += n;
        if (!this.push(n === chunk.length ? chunk : chunk.subarray(0, n))) return;
        continue;
      }
      if (this.endOrWait(1)) return;
    }
  }

  private lend(): void {
    const storage = this.ring.storage;
    for (;;) {
      if (this.destroyed) return; // push() can run a listener that destroys this stream
      const span = this.ring.peekAt(this.lentBytes);
      if (span > 0) {
        const n = span < this.maxViewBytes ? span : this.maxViewBytes;
        const at = this.ring.peekIndexAt(this.lentBytes);
        this.lentBytes += n;
        this.bytesRead += n;
        payloadCopies.retrBytes += n;
        if (!this.push(Buffer.from(storage.buffer, storage.byteOffset + at, n))) return;
        continue;
      }
      if (this.lentBytes >= this.ring.capacity || (this.lentBytes > 0 && this.ring.producerState() === STATE.ENDED)) {
        this.waitingFor = 'release'; // release() goes on
        return;
      }
      if (this.endOrWait(this.beyondLent)) return;
    }
  }

  /** View mode's wait target: one byte past those lent (read by the ring at each check). */
  private readonly beyondLent = (): number => this.lentBytes + 1;

  /** Nothing to hand out now: the producer aborted, or ended (wait for the result), or wait for data. */
  private endOrWait(minReadable: number | (() => number)): true {
    if (this.ring.producerAborted()) return true; // the result (with its full message) destroys us
    if (this.ring.isEnded()) {
      this.waitingFor = 'result';
      this.result.then((r) => {
        if (!r.ok || this.destroyed) return;
        // Last guard against a ring that carried bytes not of this file: the count must match.
        const size = r.kind === 'download' ? r.metadata?.size : undefined;
        if (size !== undefined && this.offset + this.bytesRead !== size) {
          this.destroy(new DropftpError('DROPFTP_ERR_INTEGRITY', `${this.path}: ${this.offset + this.bytesRead} B delivered for a file of ${size} B`));
          return;
        }
        this.push(null);
      });
      return true;
    }
    // One wait at a time: _read() starts none while waitingFor is set.
    this.waitingFor = 'data';
    // Woken once half a ring more is there, not per piece the worker writes (each wake-up is a
    // cross-thread notify and a turn of this loop); at most three quarters, so that the worker,
    // which waits for a quarter ring of room, and this wait can always both be met. A slow source's
    // bytes go out after BATCH_WAIT_MS, and then each as it comes until a batch came whole. The
    // target is read at each check (view mode: it follows the views released meanwhile).
    const capacity = this.ring.capacity;
    const least = typeof minReadable === 'function' ? minReadable : () => minReadable;
    const batching = this.batching;
    const want = (): number => {
      const m = least();
      const batched = batching ? Math.min(m - 1 + (capacity >>> 1), (capacity >>> 2) * 3) : 0;
      return batched > m ? batched : m;
    };
    this.ring.waitReadable(want, batching ? BATCH_WAIT_MS : Infinity).then((r) => {
      this.batching = r !== 'timeout';
      this.waitingFor = null;
      if (!this.destroyed) this._read();
    });
    return true;
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // Always, even after the worker settled: it also ends any waitReadable still pending on this ring
    // (a crashed worker never aborts its side), so the ring can go back to the pool.
    if (!this.readableEnded) this.ring.abort(ringCodeForError(err ?? new DropftpError('DROPFTP_ERR_ABORTED')));
    // The ring is recycled at 'close': not while a socket write may still read a lent view. Views
    // still in this Readable's own buffer were never handed out and never will be.
    if (this.views) this.lentBytes -= this.readableLength;
    if (this.lentBytes > 0) this.afterLent = () => callback(err);
    else callback(err);
  }
}
