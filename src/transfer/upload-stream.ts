// UploadStream: the Writable a STOR pipes its data socket into, filling the transfer's ring.
// Main thread. Invariants: 'finish' is emitted only after the worker appended every byte and closed
// the session, the commit batcher committed it, and the committed content_hash equals the hash of
// the bytes written (a commit that fails that check is deleted again, by its rev, before the error);
// destroy()/abort() before that aborts the ring's producer side, so the worker
// stops and nothing is committed; write() returns false while the ring is full (backpressure); a
// data socket may read straight into the ring instead (directInput), never both: once it has the
// ring, write() is refused, and a destroy stops that socket's reads before the ring can be reused.

import { Writable } from 'node:stream';
import type { RingWriter } from 'native-free-ringbuf';
import { DropftpError, fromWire } from '../errors.ts';
import { payloadCopies } from './copy-counts.ts';
import { ringCodeForError } from './ring-codes.ts';
import type { FileMetadata, TaskResult, UploadReady, UploadResumeToken } from './task-wire.ts';
import { releaseDisposable } from '../util/release-memory.ts';

/**
 * The ring of an upload as a data socket's read buffer (src/ftp/data/socket-reader.ts): the kernel
 * copies the client's bytes into ring memory, and nothing copies them on the main thread.
 */
export interface DirectInput {
  readonly capacity: number;
  /** Free ring memory at the write position, contiguous, as a view of at most `most` bytes (null: none). */
  span(most: number): Uint8Array | null;
  /** Free bytes in all (0 also once either side closed). */
  room(): number;
  /** `n` bytes were read into the last span handed out: publishes them. */
  filled(n: number): void;
  /** Copies up to `length` bytes of `src` from `offset` (a read that went to a scratch buffer); returns those taken. */
  copy(src: Uint8Array, offset: number, length: number): number;
  /** Resolves true once `bytes` (at most the capacity) fit, false once the ring closed on either side. */
  waitRoom(bytes: number): Promise<boolean>;
  /** True once the worker stopped reading (the upload failed): fail() then errors the stream. */
  gone(): boolean;
  /** Errors the stream with the worker's own error (after gone()). */
  fail(): void;
}

export class UploadStream extends Writable {
  /** The committed FileMetadata (set before 'finish'). */
  metadata: FileMetadata | null = null;
  bytesWritten = 0;
  /** open → ending (ring ended, worker finishing) → committing (handed to the batcher). */
  private phase: 'open' | 'ending' | 'committing' = 'open';
  /** Set while a data socket reads into the ring (directInput): stops its reads, synchronously. */
  private stopDirect: (() => void) | null = null;
  private directUsed = false;

  constructor(
    private readonly ring: RingWriter,
    readonly result: Promise<TaskResult>,
    private readonly commit: (ready: UploadReady) => Promise<FileMetadata>,
    readonly account: string,
    readonly path: string,
    /** Bytes the session held before this stream (a resumed upload), counted in the result. */
    private readonly resumedBytes: number,
    /**
     * Deletes the committed revision `rev` of the path (files/delete_v2 with parent_rev) and says
     * what became of it: for a commit whose bytes are not the client's, so that a reader of the
     * path does not get them as if the STOR had succeeded (on Dropbox the file's earlier revisions
     * stay in its version history).
     */
    private readonly withdraw: (rev: string | undefined) => Promise<string>,
  ) {
    super({ highWaterMark: Math.min(64 * 1024, ring.capacity), decodeStrings: true });
    result.then((r) => {
      if (!r.ok && !this.destroyed) this.destroy(fromWire(r.error));
    });
  }

  /** The commit is on its way: destroy()/abort() no longer recall it. */
  get commitStarted(): boolean {
    return this.phase === 'committing';
  }

  /** Stops the upload; nothing is committed; the stream errors with DROPFTP_ERR_ABORTED. */
  abort(reason = 'upload aborted'): void {
    this.destroy(new DropftpError('DROPFTP_ERR_ABORTED', reason));
  }

  /**
   * After an interrupted upload: where its session can be resumed (REST token.offset + STOR with
   * openUpload(..., { resume: token })), or null when there is nothing to resume.
   */
  async interrupted(): Promise<UploadResumeToken | null> {
    const r = await this.result;
    return r.ok ? null : (r.resume ?? null);
  }

  /**
   * The ring for a data socket to read into, or null when it cannot have it (already written to,
   * ended, destroyed, or handed out before). `stop` must stop the socket's reads at once: it runs
   * when the stream is destroyed, before the ring can go to another transfer. Bytes go in only
   * through the DirectInput from then on; end() as usual once the socket ended cleanly.
   */
  directInput(stop: () => void): DirectInput | null {
    if (this.directUsed || this.destroyed || this.writableEnded || this.writableLength > 0 || this.bytesWritten > 0 || this.phase !== 'open') return null;
    this.directUsed = true;
    this.stopDirect = stop;
    const ring = this.ring;
    const { buffer, byteOffset } = ring.storage;
    return {
      capacity: ring.capacity,
      span: (most) => {
        const free = ring.reserve();
        if (free <= 0 || this.destroyed) return null;
        return Buffer.from(buffer, byteOffset + ring.reserveIndex(), Math.min(free, most));
      },
      room: () => (this.destroyed || ring.consumerGone() ? 0 : ring.writable()),
      filled: (n) => void this.took(ring.commit(n), false),
      copy: (src, offset, length) => this.took(ring.write(src, offset, length), true),
      waitRoom: async (bytes) => !this.destroyed && (await ring.waitWritable(bytes)) === 'ready' && !this.destroyed,
      gone: () => ring.consumerGone(),
      fail: () => this.failFromResult((err) => this.destroy(err ?? undefined)),
    };
  }

  /** Counts `n` bytes put into the ring (`copied`: by a copy on this thread, not read there by the kernel); returns n. */
  private took(n: number, copied: boolean): number {
    this.bytesWritten += n;
    payloadCopies.storBytes += n;
    if (copied) payloadCopies.storCopiedBytes += n;
    return n;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    // A socket reads into the ring (directInput): a write beside it would interleave bytes.
    if (this.directUsed) return callback(new DropftpError('DROPFTP_ERR_INTERNAL', 'upload written while a data socket reads into its ring'));
    let offset = 0;
    const pump = (): void => {
      // A wait that wakes after the stream was destroyed must not write: the ring may be another
      // transfer's by now (the ring's generation check is the second guard).
      if (this.destroyed) return callback();
      // The one copy: the socket's Buffer into ring memory.
      if (offset < chunk.length) offset += this.took(this.ring.write(chunk, offset), true);
      if (offset >= chunk.length) {
        releaseDisposable(chunk); // copied whole: a socket's read buffer is freed now, not by a GC
        return callback();
      }
      if (this.ring.consumerGone()) return void this.failFromResult(callback);
      // Woken once a quarter ring (or the rest of this chunk) fits, not per read of the worker.
      this.ring.waitWritable(Math.min(chunk.length - offset, this.ring.capacity >>> 2)).then(pump, callback);
    };
    pump();
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.ring.consumerGone()) return void this.failFromResult(callback);
    this.phase = 'ending';
    this.ring.end();
    this.result.then(async (r) => {
      if (!r.ok || r.kind !== 'upload') return this.failFromResult(callback);
      if (r.byteLength !== this.resumedBytes + this.bytesWritten) {
        return callback(new DropftpError('DROPFTP_ERR_INTERNAL', `worker appended ${r.byteLength} B, stream took ${this.resumedBytes + this.bytesWritten} B`));
      }
      // Destroyed while the worker was finishing: commit nothing.
      if (this.destroyed) return callback(new DropftpError('DROPFTP_ERR_ABORTED', 'upload destroyed before its commit'));
      try {
        this.phase = 'committing';
        const meta = await this.commit(r);
        if (meta.content_hash !== r.contentHash) {
          const what = `${this.path}: committed content_hash ${meta.content_hash} ≠ ${r.contentHash} of the bytes received`;
          throw new DropftpError('DROPFTP_ERR_INTEGRITY', `${what}; ${await this.withdraw(meta.rev)}`);
        }
        this.metadata = meta;
        callback();
      } catch (err) {
        callback(err instanceof DropftpError ? err : new DropftpError('DROPFTP_ERR_COMMIT_FAILED', String(err)));
      }
    });
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // The ring goes back to the pool once this stream closes: no read may land in it after that.
    const stop = this.stopDirect;
    this.stopDirect = null;
    stop?.();
    // Once the commit is on its way it cannot be recalled; before that, aborting the ring (even after
    // end()) makes the worker stop without closing the session.
    if (this.phase !== 'committing') this.ring.abort(ringCodeForError(err ?? new DropftpError('DROPFTP_ERR_ABORTED')));
    callback(err);
  }

  private failFromResult(callback: (error?: Error | null) => void): void {
    this.result.then((r) => callback(r.ok ? new DropftpError('DROPFTP_ERR_INTERNAL', 'upload worker stopped reading') : fromWire(r.error)));
  }
}
