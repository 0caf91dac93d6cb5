// DownloadStream: the Readable a RETR pipes to its data socket, draining the transfer's ring.
// Main thread. Invariants: it ends ('end') only after the worker ended the ring cleanly AND its
// result (metadata, hash verified for whole-file reads) arrived and the bytes delivered add up to
// the file's size; every failure is a DropftpError
// rebuilt from the worker's wire error; destroying it before the end aborts the ring's consumer side,
// which the worker sees at its next step (no message needed).

import { Readable } from 'node:stream';
import type { RingReader } from 'native-free-ringbuf';
import { DropftpError, fromWire } from '../errors.ts';
import { ringCodeForError } from './ring-codes.ts';
import type { FileMetadata, TaskResult } from './task-wire.ts';

const CHUNK_BYTES = 64 * 1024;

export class DownloadStream extends Readable {
  /** FileMetadata of the file read (set before 'end'). */
  metadata: FileMetadata | null = null;
  /** True when the whole file was hashed and matched its content_hash. */
  verified = false;
  bytesRead = 0;
  private waiting = false;

  constructor(
    private readonly ring: RingReader,
    readonly result: Promise<TaskResult>,
    readonly account: string,
    readonly path: string,
    /** Where the read started (REST): the bytes delivered must reach exactly the file's size. */
    readonly offset = 0,
  ) {
    super({ highWaterMark: Math.min(CHUNK_BYTES, ring.capacity) });
    result.then((r) => {
      if (!r.ok && !this.destroyed) this.destroy(fromWire(r.error));
      else if (r.ok && r.kind === 'download') {
        this.metadata = r.metadata;
        this.verified = r.verified;
      }
    });
  }

  /** Stops the download; nothing more is read; the stream errors with DROPFTP_ERR_ABORTED. */
  abort(reason = 'download aborted'): void {
    this.destroy(new DropftpError('DROPFTP_ERR_ABORTED', reason));
  }

  override _read(): void {
    if (this.waiting) return;
    for (;;) {
      // Never more than the highWaterMark buffered here: the rest waits in the ring (bounded memory).
      const room = Math.max(1, this.readableHighWaterMark - this.readableLength);
      const available = Math.min(this.ring.readable(), room);
      if (available > 0) {
        const chunk = Buffer.allocUnsafe(available < CHUNK_BYTES ? available : CHUNK_BYTES);
        const n = this.ring.read(chunk);
        if (n === 0) return; // our own side was aborted
        this.bytesRead += n;
        if (!this.push(n === chunk.length ? chunk : chunk.subarray(0, n))) return;
        continue;
      }
      if (this.ring.producerAborted()) return; // the result (with its full message) destroys us
      if (this.ring.isEnded()) {
        this.waiting = true;
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
        return;
      }
      this.waiting = true;
      this.ring.waitReadable(1).then(() => {
        this.waiting = false;
        if (!this.destroyed) this._read();
      });
      return;
    }
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // Always, even after the worker settled: it also ends any waitReadable still pending on this ring
    // (a crashed worker never aborts its side), so the ring can go back to the pool.
    if (!this.readableEnded) this.ring.abort(ringCodeForError(err ?? new DropftpError('DROPFTP_ERR_ABORTED')));
    callback(err);
  }
}
