// Reads a plain TCP data connection through buffers of ours (net's `onread`) instead of the 64 KiB
// buffer Node allocates for every read: a STOR into the engine gets its ring's free memory as the
// read buffer, so the kernel copies the client's bytes into the ring and the main thread copies none
// (issue #14: at most one copy per payload byte; with Node's buffers that was one copy each, plus a
// malloc, a free and the stream machinery per 64 KiB read). Main thread.
//
// Modes: idle (no transfer reads; the socket is paused from its accept, and a stray read is handed
// on as a copy), stream (a sink that is not a ring: each read gets a new buffer, handed on as Node
// would) and ring (readInto). Invariants: a ring span is handed to the kernel only while the ring's
// stream is open, and the socket's reads stop synchronously when that stream is destroyed
// (UploadStream.directInput's stop), so no read lands in a ring given to another transfer; a read
// that went to the shared scratch buffer is wholly copied out before the callback returns (reads
// on this thread run one at a time); a span taken while reading goes on leaves a few bytes free
// (holdBack), so that the span left for the read after a pause is not empty (an empty buffer would
// read as end of file) and the read after a full ring does not have to go to the scratch buffer.

import { Socket } from 'node:net';
import type { DirectInput } from '../../transfer/upload-stream.ts';

/** Node's own read size; the scratch buffer is shared by every socket of this thread. */
const READ_BYTES = 64 * 1024;
const SCRATCH = Buffer.allocUnsafeSlow(READ_BYTES);
/** Most bytes one read may place in a ring (the kernel hands over what it has, up to this). */
const MAX_SPAN_BYTES = 1024 * 1024;

const readers = new WeakMap<Socket, SocketReader>();

/** Free ring bytes a read leaves while reading goes on (reading pauses at this much room or less). */
function holdBack(input: DirectInput): number {
  return Math.min(4096, input.capacity >>> 2);
}

/** The reader of a data socket made by this module (null: a socket Node reads as usual, e.g. TLS). */
export function readerOf(socket: unknown): SocketReader | null {
  return socket instanceof Socket ? (readers.get(socket) ?? null) : null;
}

export class SocketReader {
  #socket: Socket | null = null;
  #mode: 'idle' | 'stream' | 'ring' = 'idle';
  #input: DirectInput | null = null;
  /** The span handed out for the next read (null: SCRATCH or a stream buffer). */
  #span: Uint8Array | null = null;
  /** Bytes of a scratch read the ring had no room for yet (ring mode); reading waits until they are in. */
  #pending: Buffer | null = null;
  #waiting = false;
  #onBytes: (n: number) => void = () => {};

  /** For net.connect / new Socket: the buffer callbacks. */
  readonly onread = {
    buffer: (): Uint8Array => this.#next(),
    callback: (n: number, buf: Uint8Array): boolean => this.#read(n, buf),
  };

  bind(socket: Socket): void {
    this.#socket = socket;
    readers.set(socket, this);
  }

  /** A sink that is not a ring: reads are pushed as Buffers of their own, the 'data' a stream gets. */
  streamMode(): void {
    if (this.#mode === 'idle') this.#mode = 'stream';
  }

  /**
   * Reads into `input` (an upload's ring) from now on; `onBytes` counts each read. The caller
   * resumes the socket; it is paused here while the ring is full, and by stop() for good.
   */
  readInto(input: DirectInput, onBytes: (n: number) => void): void {
    this.#mode = 'ring';
    this.#input = input;
    this.#onBytes = onBytes;
  }

  /** Stops reading into the ring now (its stream is destroyed); the socket stays paused. */
  stop(): void {
    this.#input = null;
    this.#span = null;
    this.#pending = null;
    this.#mode = 'idle';
    const socket = this.#socket;
    if (socket && !socket.destroyed) socket.pause();
  }

  #next(): Uint8Array {
    this.#span = null;
    const input = this.#input;
    if (this.#mode === 'stream') return Buffer.allocUnsafeSlow(READ_BYTES);
    if (!input || this.#pending) return SCRATCH;
    const room = input.room();
    // Reading on leaves the last few free bytes: the span handed out while paused is then not empty
    // (reading pauses once no more than those are left, and the first read after it lands there).
    const keep = holdBack(input);
    const span = room > 0 ? input.span(Math.min(room > keep ? room - keep : room, MAX_SPAN_BYTES)) : null;
    if (!span || span.length === 0) return this.#scratch(input);
    this.#span = span;
    return span;
  }

  /** The scratch buffer, no larger than the ring (a scratch read waits only for that much room). */
  #scratch(input: DirectInput): Uint8Array {
    return input.capacity < READ_BYTES ? SCRATCH.subarray(0, input.capacity) : SCRATCH;
  }

  #read(n: number, buf: Uint8Array): boolean {
    const socket = this.#socket!;
    const span = this.#span;
    this.#span = null;
    if (this.#mode === 'stream') {
      const own = buf.buffer === SCRATCH.buffer ? Buffer.from(buf.subarray(0, n)) : Buffer.from(buf.buffer, buf.byteOffset, n);
      return socket.push(own);
    }
    const input = this.#input;
    if (this.#mode === 'idle' || !input) {
      // Nobody reads this socket into a ring: hand the bytes on (a listener after a send drops them).
      return socket.push(Buffer.from(buf.subarray(0, n)));
    }
    if (span && buf.buffer === span.buffer && buf.byteOffset === span.byteOffset) {
      input.filled(n);
    } else {
      // A read into the scratch buffer (the first one, or the one after a full ring): copied, all of it.
      const taken = input.copy(buf, 0, n);
      if (taken < n) this.#pending = Buffer.from(buf.subarray(taken, n));
    }
    this.#onBytes(n);
    if (this.#failIfGone(input)) return true;
    // Paused while the ring has little room: reading on would make reads of a few bytes.
    if (this.#pending || input.room() <= holdBack(input)) this.#waitForRoom(input);
    return true;
  }

  /** The worker stopped reading (the upload failed): reading stops and the stream errors with its error. */
  #failIfGone(input: DirectInput): boolean {
    if (!input.gone()) return false;
    this.stop();
    input.fail();
    return true;
  }

  /** Pauses the socket until the ring has a quarter free (and what a scratch read left is in), then resumes it. */
  #waitForRoom(input: DirectInput): void {
    const socket = this.#socket!;
    socket.pause();
    if (this.#waiting) return;
    this.#waiting = true;
    const quarter = Math.max(1, input.capacity >>> 2);
    const loop = async (): Promise<void> => {
      for (;;) {
        const pending = this.#pending;
        const want = pending ? Math.min(pending.length, quarter) : quarter;
        if (!(await input.waitRoom(want))) return;
        if (this.#input !== input) return;
        if (pending) {
          const taken = input.copy(pending, 0, pending.length);
          this.#pending = taken < pending.length ? pending.subarray(taken) : null;
          if (this.#pending) continue;
        }
        if (!socket.destroyed) socket.resume();
        return;
      }
    };
    loop().then(
      () => {
        this.#waiting = false;
        if (this.#input === input) this.#failIfGone(input);
      },
      () => {
        this.#waiting = false;
      },
    );
  }
}

/**
 * A passive connection accepted paused (pauseOnConnect), as a socket whose reads go through a
 * SocketReader; the accepted Socket object is left without its handle. Null where Node's socket
 * does not have the shape this relies on (then the accepted socket is used as it is).
 */
export function adoptAccepted(raw: Socket): Socket | null {
  const handle = (raw as unknown as { _handle?: { readStop?: unknown; useUserBuffer?: unknown } | null })._handle;
  if (!handle || typeof handle.useUserBuffer !== 'function' || typeof handle.readStop !== 'function') return null;
  const reader = new SocketReader();
  // Node's own way to make a Socket of an accepted handle (net.Server does the same; `handle` is the
  // option cluster and child_process use). pauseOnCreate: reading starts with the transfer.
  const socket = new Socket({ handle, allowHalfOpen: true, readable: true, writable: true, onread: reader.onread, pauseOnCreate: true } as ConstructorParameters<typeof Socket>[0]);
  (raw as unknown as { _handle: unknown })._handle = null;
  // The accepted object counted in its server's connections until its 'close'.
  raw.destroy();
  reader.bind(socket);
  return socket;
}

/** The `onread` option for an outgoing data connection (active mode), and the binding once made. */
export function readerForConnect(): { onread: SocketReader['onread']; bind(socket: Socket): void } {
  const reader = new SocketReader();
  return { onread: reader.onread, bind: (socket) => reader.bind(socket) };
}
