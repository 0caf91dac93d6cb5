// Node stream adapters over the two ring sides, for the thread that owns the sockets.
// Runs on the main thread (or any thread with an event loop). Invariants: backpressure is end to end
// (a full ring parks _write; an empty ring parks _read); destroying a stream before its natural end
// aborts its ring side so that the other thread learns it without any message.

import { Readable, Writable } from 'node:stream';
import { STATE } from './layout.ts';
import type { RingReader, RingWriter } from './ring.ts';

/** Error raised by an adapter when the other side aborted; `ringCode` is the code it left. */
export class RingAbortedError extends Error {
  readonly code = 'RING_ABORTED';
  constructor(
    readonly ringCode: number,
    readonly side: 'producer' | 'consumer',
  ) {
    super(`ring ${side} aborted with code ${ringCode}`);
    this.name = 'RingAbortedError';
  }
}

/** Code written into the ring when a stream is destroyed without an error that carries one. */
export const CODE_DESTROYED = 1;

export interface RingStreamOptions {
  /** Largest chunk a RingReadable pushes (default 64 KiB). */
  chunkBytes?: number;
  /** Stream highWaterMark in bytes (default 64 KiB, at most the ring's capacity). */
  highWaterMark?: number;
  /** Maps an error that destroys the stream to the code written into the ring (default 1). */
  codeForError?: (err: Error) => number;
  /** Builds the error for a ring code the other side left (default RingAbortedError). */
  errorForCode?: (ringCode: number, side: 'producer' | 'consumer') => Error;
}

function defaultErrorForCode(ringCode: number, side: 'producer' | 'consumer'): Error {
  return new RingAbortedError(ringCode, side);
}

/**
 * A Writable that fills a ring: write() returns false once the ring is full and a highWaterMark
 * of bytes waits behind it; 'drain' follows when the consumer frees space. end() ends the ring
 * after every byte was accepted; destroy(err) aborts it.
 */
export class RingWritable extends Writable {
  private readonly codeForError: (err: Error) => number;
  private readonly errorForCode: (ringCode: number, side: 'producer' | 'consumer') => Error;

  constructor(
    readonly ring: RingWriter,
    options: RingStreamOptions = {},
  ) {
    super({ highWaterMark: Math.min(options.highWaterMark ?? 65536, ring.capacity), decodeStrings: true });
    this.codeForError = options.codeForError ?? (() => CODE_DESTROYED);
    this.errorForCode = options.errorForCode ?? defaultErrorForCode;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    let offset = 0;
    const pump = (): void => {
      for (;;) {
        if (offset < chunk.length) offset += this.ring.write(chunk, offset);
        if (offset >= chunk.length) return callback();
        if (this.ring.consumerGone()) return callback(this.errorForCode(this.ring.consumerError(), 'consumer'));
        if (this.destroyed) return callback();
        if (this.ring.producerState() !== STATE.OPEN) {
          return callback(new Error('write after the ring was ended or aborted by this side'));
        }
        this.ring.waitWritable(1).then(pump, callback);
        return;
      }
    };
    pump();
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.ring.consumerGone()) return callback(this.errorForCode(this.ring.consumerError(), 'consumer'));
    this.ring.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.writableFinished) this.ring.abort(err ? this.codeForError(err) : CODE_DESTROYED);
    callback(err);
  }
}

/**
 * A Readable that drains a ring: pushes chunks of up to chunkBytes as the consumer pulls, ends
 * when the producer ended and every byte was read, errors when the producer aborted.
 * destroy() before the end aborts the consumer side.
 */
export class RingReadable extends Readable {
  private readonly chunkBytes: number;
  private readonly codeForError: (err: Error) => number;
  private readonly errorForCode: (ringCode: number, side: 'producer' | 'consumer') => Error;
  private waiting = false;

  constructor(
    readonly ring: RingReader,
    options: RingStreamOptions = {},
  ) {
    super({ highWaterMark: Math.min(options.highWaterMark ?? 65536, ring.capacity) });
    this.chunkBytes = options.chunkBytes ?? 65536;
    this.codeForError = options.codeForError ?? (() => CODE_DESTROYED);
    this.errorForCode = options.errorForCode ?? defaultErrorForCode;
  }

  override _read(): void {
    if (this.waiting) return;
    for (;;) {
      // push() can run a 'data' listener that destroys this stream (and aborts the ring).
      if (this.destroyed) return;
      const available = this.ring.readable();
      if (available > 0) {
        const chunk = Buffer.allocUnsafe(available < this.chunkBytes ? available : this.chunkBytes);
        const n = this.ring.read(chunk);
        if (n === 0) return; // this side aborted: read() refuses
        if (!this.push(n === chunk.length ? chunk : chunk.subarray(0, n))) return;
        continue;
      }
      if (this.ring.producerAborted()) {
        this.destroy(this.errorForCode(this.ring.producerError(), 'producer'));
        return;
      }
      if (this.ring.isEnded()) {
        this.push(null);
        return;
      }
      this.waiting = true;
      this.ring.waitReadable(1).then(
        () => {
          this.waiting = false;
          if (!this.destroyed) this._read();
        },
        (err: Error) => this.destroy(err),
      );
      return;
    }
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.readableEnded) this.ring.abort(err ? this.codeForError(err) : CODE_DESTROYED);
    callback(err);
  }
}
