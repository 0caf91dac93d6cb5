// Ordered file writes behind a synchronous write(): bytes are kept (never copied) and written in
// batches by positioned writev calls, one operation at a time per queue (open, write, close, then a
// follow-up such as a rename). Runs in the local box child's main thread; the I/O on libuv's pool.
// A chunk queued as disposable (a request body's, from Node's HTTP parser: a fresh ArrayBuffer each)
// has its memory freed once its write is done or dropped (src/util/release-memory.ts): without that
// it stayed allocated until a mark-compact, as it outlived two scavenges in the queue (under 100
// uploads of 10 MiB the box's peak RSS was 40 MiB higher, its pages first touched again and again).
// Invariants: operations run in the order queued; after a failure no later write or follow-up runs,
// but every opened file is still closed; all queues together buffer about WRITE_BUDGET_BYTES (the
// batch shrinks as queues multiply, so thousands of uploads stay bounded while one gets 4 MiB writes);
// each operation takes its turn in libuv's pool with downloads' reads (io-slots.ts).

import { open, type FileHandle } from 'node:fs/promises';
import { withIoSlot } from './io-slots.ts';
import { releaseMemory } from '../../util/release-memory.ts';

const WRITE_BUDGET_BYTES = 64 * 1024 * 1024;
const MIN_BATCH_BYTES = 64 * 1024;
const MAX_BATCH_BYTES = 4 * 1024 * 1024;

let liveQueues = 0;

/** Bytes per writev: whole 4 MiB blocks for a few writers, down to 64 KiB for thousands. */
function batchBytes(): number {
  let b = MAX_BATCH_BYTES;
  while (b > MIN_BATCH_BYTES && b * 2 * liveQueues > WRITE_BUDGET_BYTES) b /= 2;
  return b;
}

interface QueuedFile {
  readonly path: string;
  fh: FileHandle | null;
  position: number; // where the next pending byte goes
}

export class WriteQueue {
  private chain: Promise<void> = Promise.resolve();
  private file: QueuedFile | null = null;
  private pending: Buffer[] = [];
  private pendingDisposable: Buffer[] = []; // of pending: the ones freed after their write
  private pendingLen = 0;
  private queuedLen = 0; // bytes handed to the chain, not yet written
  private failure: unknown = null;
  private waiter: { resolve(): void; reject(err: unknown): void } | null = null;
  private live = true;

  constructor() {
    liveQueues++;
  }

  /** Later writes go to `path` from `position` (an already open `fh` is adopted). */
  open(path: string, flags: 'w' | 'r+', position = 0, fh: FileHandle | null = null): void {
    this.flush();
    const f: QueuedFile = { path, fh, position };
    this.file = f;
    if (!fh) {
      this.enqueue(0, false, async () => {
        f.fh = await open(path, flags);
      });
    }
  }

  /**
   * Queues `chunk` for the current file (the caller must not change it afterwards). `disposable`: no
   * one else holds or reads it, so its memory is freed (releaseMemory) once written or dropped.
   */
  write(chunk: Buffer, disposable = false): void {
    if (this.failure !== null) throw this.failure;
    if (!this.file) throw new Error('WriteQueue.write without an open file');
    this.pending.push(chunk);
    if (disposable) this.pendingDisposable.push(chunk);
    this.pendingLen += chunk.length;
    if (this.pendingLen >= batchBytes()) this.flush();
  }

  /** undefined while the caller may go on writing; else a promise to await first (backpressure). */
  backpressure(): Promise<void> | undefined {
    if (this.failure !== null) return Promise.reject(this.failure);
    // the batch may have shrunk since these bytes came (more queues): hand them over first
    if (this.pendingLen >= batchBytes()) this.flush();
    if (this.queuedLen < 2 * batchBytes()) return undefined;
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Writes the rest of the current file, closes it, then runs `after` (skipped after a failure). */
  close(after?: () => Promise<void>): void {
    this.flush();
    const f = this.file;
    this.file = null;
    if (!f) return;
    this.enqueue(0, true, async () => {
      const fh = f.fh;
      f.fh = null;
      await fh?.close();
      if (after && this.failure === null) await after();
    });
  }

  /** Resolves when everything queued is done (the current file, if any, stays open); rejects with the first failure. */
  async drain(): Promise<void> {
    this.flush();
    await this.chain;
    if (this.failure !== null) throw this.failure;
  }

  /** Drops what is not written yet, closes the open file, waits for the queue; never throws. */
  async abandon(): Promise<void> {
    this.pending = [];
    this.pendingDisposable.forEach(releaseMemory);
    this.pendingDisposable = [];
    this.pendingLen = 0;
    this.failure ??= new Error('write abandoned');
    this.close();
    await this.chain;
    this.end();
  }

  /** After drain(): the queue no longer counts towards the shared budget. */
  end(): void {
    if (this.live) {
      this.live = false;
      liveQueues--;
    }
  }

  private flush(): void {
    if (this.pendingLen === 0) return;
    const f = this.file!;
    const bufs = this.pending;
    const disposable = this.pendingDisposable;
    const at = f.position;
    const len = this.pendingLen;
    f.position += len;
    this.pending = [];
    this.pendingDisposable = [];
    this.pendingLen = 0;
    this.enqueue(
      len,
      false,
      async () => {
        // libuv loops on short writes, but when a later write of its loop fails (a full disk, a file
        // size limit) it answers the bytes written so far and no error: write the rest again, which
        // then fails, or this block would be stored short under the hash of all of its bytes
        let done = (await f.fh!.writev(bufs, at)).bytesWritten;
        while (done < len) {
          const n = (await f.fh!.writev(after(bufs, done), at + done)).bytesWritten;
          if (n === 0) throw new Error(`writev wrote nothing at byte ${at + done} of ${f.path}`);
          done += n;
        }
      },
      disposable.length > 0 ? () => disposable.forEach(releaseMemory) : undefined,
    );
  }

  /** `done` runs after `op` settled or was skipped (a failure before it). */
  private enqueue(len: number, always: boolean, op: () => Promise<void>, done?: () => void): void {
    this.queuedLen += len;
    this.chain = this.chain.then(async () => {
      try {
        if (always || this.failure === null) await withIoSlot(op);
      } catch (err) {
        this.failure ??= err;
      }
      done?.();
      this.queuedLen -= len;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.failure !== null) {
      this.waiter = null;
      w.reject(this.failure);
    } else if (this.queuedLen < 2 * batchBytes()) {
      this.waiter = null;
      w.resolve();
    }
  }
}

/** The bytes of `bufs` after the first `skip`. */
function after(bufs: Buffer[], skip: number): Buffer[] {
  const rest: Buffer[] = [];
  for (const b of bufs) {
    if (skip >= b.length) skip -= b.length;
    else {
      rest.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
  }
  return rest;
}
