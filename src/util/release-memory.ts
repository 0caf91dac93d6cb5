// Frees a Buffer's memory at once, without waiting for V8's garbage collector. Node reads a socket
// into a fresh ArrayBuffer per read (64 KiB for a busy TCP socket; its HTTP parser copies each body
// piece into a fresh one too). V8 counts such memory as external and frees it only when a GC finds
// the dead ArrayBuffer: with little JS allocation between reads the young generation rarely fills,
// dead read buffers pile up, and every 64 MiB of them V8 forces a mark-compact ("external memory
// pressure"). Measured on the gateway's main thread, eight 128 MiB STORs at once: in some runs
// 51-72 mark-compacts per GiB received and 1.40-1.47 main-thread CPU-s per GiB, in others 2-3 and
// 0.96-1.14; memory that is freed at once is also the next read's, still mapped and in cache.
//
// How: an ArrayBuffer in the transfer list of postMessage is detached (V8 subtracts its bytes from
// the external count on the spot); posted on a port whose channel is closed, the message is dropped
// as soon as it is serialised, and with it the last reference to the memory.
// Invariants: only a Buffer that spans its whole, ordinary ArrayBuffer is released (a slice of a
// larger one, a pooled small Buffer, a SharedArrayBuffer's view are left alone), and only one no
// one else holds: after the call every view of it reads as empty.

import { MessageChannel, type MessagePort } from 'node:worker_threads';

/**
 * Smallest buffer worth freeing early. A release costs ~2 µs: nothing next to a 64 KiB read's
 * memory, but a thousand slow connections deliver reads of a few KiB, whose early release would
 * cost more than it saves.
 */
export const RELEASE_MIN_BYTES = 32 * 1024;

let sink: MessagePort | null = null;

function closedPort(): MessagePort {
  if (!sink) {
    const channel = new MessageChannel();
    channel.port2.close();
    channel.port1.close();
    sink = channel.port1;
  }
  return sink;
}

/**
 * Frees `buf`'s memory now when it is the whole of its ArrayBuffer and at least RELEASE_MIN_BYTES;
 * says whether it did. The caller must hold the only reference that is still used: `buf` (and any
 * other view of its memory) reads as empty afterwards.
 */
export function releaseMemory(buf: Uint8Array): boolean {
  const ab = buf.buffer;
  if (buf.byteOffset !== 0 || buf.byteLength !== ab.byteLength || ab.byteLength < RELEASE_MIN_BYTES || !(ab instanceof ArrayBuffer)) return false;
  try {
    closedPort().postMessage(undefined, [ab]);
  } catch {
    return false; // not transferable (marked so by its owner): the GC frees it in its time
  }
  return ab.byteLength === 0;
}

const disposable = new WeakSet<Uint8Array>();

/**
 * Marks `buf` as handed over whole: whoever consumes it last (and has copied what it needs) may
 * release its memory (releaseDisposable). A wrapper that passes on a slice or a copy passes on no
 * mark, so the buffer is then left to the GC.
 */
export function markDisposable(buf: Uint8Array): void {
  if (buf.byteLength >= RELEASE_MIN_BYTES) disposable.add(buf);
}

/** Releases `buf` if it was marked disposable (markDisposable); says whether its memory was freed. */
export function releaseDisposable(buf: Uint8Array): boolean {
  return disposable.delete(buf) && releaseMemory(buf);
}
