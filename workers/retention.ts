// The bytes of one upload that Dropbox has not acknowledged yet, from the session's offset on: kept
// in memory up to the upload's memory share (memory not touched before only up to its part of
// FRESH_TOTAL_BYTES), beyond that in spool files (mode 0600) under the spool folder, so that a failed
// call is sent again without asking the client. Memory a call's body has sent (and its socket let go
// of) is spilled to the spool when the share is full, so the bytes not yet sent stay in memory and a
// spool file is read only for a retry (spillSent); a spill the disk refuses leaves its bytes in
// memory and the upload goes on without a spool. Runs on the worker the upload is pinned to.
// Invariants: bytes are kept in file order as [start, end); memory buffers are charged to the memory
// budget and spool bytes to engine.spoolBytes (control block) while held; memory is spilled only
// below what the live try's socket has written (markDrained); release() frees only acknowledged
// bytes; destroy() frees everything and removes the spool files;
// spool files are named <threadKey>-<taskId>-<n>.spool so main can remove a dead thread's; bytes
// go from the ring to a spool file straight from the ring's memory, consumed once written; spool
// read-back buffers are a quarter of the memory share (held during one body piece, reused only once
// the request wrote it: RECYCLE_MIN_BYTES).

import { open, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { RingReader } from 'native-free-ringbuf';
import { MIN_CHUNK_BYTES } from '../src/transfer/memory-budget.ts';
import { G } from '../src/transfer/shared-layout.ts';
import { countSpoolIo, dropChunk, giveChunk, hasSpareChunk, releaseSpool, reserveSpool, takeChunk } from './thread-context.ts';
import type { ThreadContext } from './thread-context.ts';

/** Memory is taken in pieces of this size (or the share, if smaller). */
const MEMORY_PIECE_BYTES = 256 * 1024;
/**
 * Memory an upload with a spool takes fresh (not as a spare piece its thread holds) is its part of
 * FRESH_TOTAL_BYTES among the uploads alive, at least FRESH_MEMORY_BYTES; past it, its bytes go to
 * the spool unless a spare is there. A page touched for the first time costs a trap (on the VMs we
 * measure on ~10 us per 4 KiB: 2.7 CPU-s per GiB of new memory, a script filling new 256 KiB
 * Buffers); the page cache a spool file writes to does not. In a storm of 200 x 10 MiB every upload
 * is new: with the whole share (4 MiB each there) in memory the gateway took 96,000-104,000 page
 * faults per GiB moved, with 1 MiB each 55,000-67,000, and 4.84-5.34 against 4.22-4.57 CPU-s/GiB,
 * 726-744 against 431-439 MiB peak RSS, STOR 126-129 against 134-144 MB/s (5 alternating pairs).
 * One upload alone keeps its whole share in memory as before. With buffers carved from slabs
 * (chunk-slabs.ts; huge pages under bin/with-tuned-malloc) a first touch costs less, yet 256 MiB
 * instead of 64 showed no gain (storm of 200, three alternating rounds: 190-253 against 218-246
 * MB/s, 4.6-6.1 against 4.6-5.5 CPU-s/GiB, peak RSS 606-621 against 448-455 MiB).
 */
export const FRESH_MEMORY_BYTES = 1024 * 1024;
/** Fresh memory all uploads together take before they spool (each at least FRESH_MEMORY_BYTES). */
export const FRESH_TOTAL_BYTES = 64 * 1024 * 1024;
/** Most bytes moved from the ring to a spool file per write, and read back per body chunk. */
const SPOOL_IO_BYTES = 1024 * 1024;
const MIN_SPOOL_IO_BYTES = MIN_CHUNK_BYTES;
/**
 * Smallest spool read-back piece whose buffer is reused: the request takes the next piece only after
 * the socket wrote this one, because undici writes a body piece corked and, when write() answers
 * false (always for a piece of at least the socket's writableHighWaterMark: 16 KiB in Node 20,
 * 64 KiB in 22), awaits 'drain' (all written) or 'close' before it asks for more. A fresh 1 MiB
 * buffer per piece was an mmap, 256 page faults and a munmap, and its external memory forced a major
 * GC in the worker every few tens of MiB of a spooled upload. Smaller pieces (a quarter of a small
 * memory share: 64 KiB each among 1,000 uploads) were fresh buffers from malloc's arenas, freed only
 * when a GC found them.
 */
export const RECYCLE_MIN_BYTES = 64 * 1024;

/** Most memory one spill moves to the spool in one write. */
const SPILL_BYTES = 4 * 1024 * 1024;

/** Writes `bufs` back to back at `pos` (writev; what a short write left, piece by piece). */
async function writeFully(handle: FileHandle, bufs: Buffer[], pos: number): Promise<void> {
  const total = bufs.reduce((a, b) => a + b.length, 0);
  let done = (await handle.writev(bufs, pos)).bytesWritten;
  if (done >= total) return;
  let off = 0;
  for (const b of bufs) {
    for (let from = Math.max(0, done - off); from < b.length; ) {
      const r = await handle.write(b, from, b.length - from, pos + off + from);
      from += r.bytesWritten;
      done += r.bytesWritten;
    }
    off += b.length;
  }
}

/**
 * Views of the first `most` readable bytes of `ring`, in its own memory (one span, or two where the
 * bytes wrap around its end); nothing is consumed.
 */
function ringSpans(ring: RingReader, most: number): Buffer[] {
  const { buffer, byteOffset } = ring.storage;
  const spans: Buffer[] = [];
  const first = Math.min(ring.peek(), most);
  if (first <= 0) return spans;
  spans.push(Buffer.from(buffer, byteOffset + ring.peekIndex(), first));
  const second = Math.min(ring.peekAt(first), most - first);
  if (second > 0) spans.push(Buffer.from(buffer, byteOffset + ring.peekIndexAt(first), second));
  return spans;
}

interface SpoolFile {
  readonly path: string;
  readonly handle: FileHandle;
  writePos: number;
  /** Bytes of this file still retained. */
  live: number;
}

type Segment = { start: number; length: number } & ({ buf: Buffer } | { file: SpoolFile; filePos: number });

/**
 * Why filling stopped: the ring's state, no room left (memory and spool full: 'full'), or the
 * upload's lead reached (upload-lead.ts: 'lead', room comes back as a call's body takes bytes).
 */
export type FillResult = 'more' | 'ended' | 'aborted' | 'full' | 'lead' | 'empty';

export class SpoolError extends Error {
  constructor(
    message: string,
    readonly noSpace: boolean,
  ) {
    super(message);
  }
}

/** A spool file operation that failed: `what`, the errno code, and whether the disk is full. */
function spoolError(what: string, err: unknown): SpoolError {
  const code = (err as NodeJS.ErrnoException).code;
  return new SpoolError(`${what}: ${code ?? String(err)}`, code === 'ENOSPC' || code === 'EDQUOT');
}

export class Retention {
  private readonly segments: Segment[] = [];
  private memoryBytes = 0;
  private spoolBytes = 0;
  private spoolKib = 0;
  private current: SpoolFile | null = null;
  private files = 0;
  private readonly allFiles = new Set<SpoolFile>();
  /** Read-back buffers lent to a request body now (charged to the budget until they come back). */
  private readonly lent = new Set<Buffer>();
  /** File offset of the first byte retained (= what the session holds). */
  start: number;
  /** File offset after the last byte retained. */
  end: number;
  /** The call's try whose body is sending now (beginTry), and below what offset its socket holds no piece. */
  private liveTry: object | null = null;
  private drained = 0;

  constructor(
    private readonly ctx: ThreadContext,
    private readonly spoolDir: string,
    private readonly taskId: number,
    /** Most spool bytes this upload may hold (0: memory only; 0 too once a spill failed). */
    private spoolCapBytes: number,
    offset: number,
  ) {
    this.start = offset;
    this.end = offset;
  }

  get length(): number {
    return this.end - this.start;
  }

  /** Memory this upload may hold now (the budget's share, published by main, may shrink). */
  memoryShare(): number {
    return Math.max(MIN_CHUNK_BYTES, Atomics.load(this.ctx.words, G.UPLOAD_MEMORY_BYTES));
  }

  /**
   * Bytes per spool write or read-back: a quarter of the memory share, so that a thousand spooling
   * uploads do not hold a MiB each on top of the budget.
   */
  private ioBytes(): number {
    return Math.max(MIN_SPOOL_IO_BYTES, Math.min(SPOOL_IO_BYTES, 2 ** Math.floor(Math.log2(this.memoryShare() / 4))));
  }

  /** Most bytes this upload may retain: its memory share plus its spool allowance. */
  capacity(): number {
    return this.memoryShare() + this.spoolCapBytes;
  }

  /**
   * Moves bytes from the ring into retention (and `onBytes`, the hasher) until the ring is empty,
   * retention is full or it reaches `endLimit` (a file offset: the upload's lead, upload-lead.ts);
   * bytes from `spoolLimit` on are taken only where memory has room already (no spill is made for
   * them), never into the spool (retainLimit: the client's pace while a streamed call drains its
   * backlog). Throws SpoolError when a spool file cannot be written.
   */
  async fill(ring: RingReader, onBytes: (data: Uint8Array) => void, endLimit = Infinity, spoolLimit = Infinity): Promise<FillResult> {
    let moved = 0;
    for (;;) {
      if (ring.producerAborted()) return 'aborted';
      // One reading: the client's thread writes the ring meanwhile.
      const inRing = ring.readable();
      if (inRing === 0) {
        if (ring.isEnded()) return 'ended';
        return moved > 0 ? 'more' : 'empty';
      }
      const readable = Math.min(inRing, endLimit - this.end);
      if (readable <= 0) return 'lead';
      // From spoolLimit on only memory that has room now: no spill is made for it (with a small share
      // that was a spool write per few KiB of every upload).
      if (this.end >= spoolLimit && this.memoryRoom(false) === 0) return 'lead';
      // Memory full: what a body already sent goes to the spool, making room for what it has not.
      if (this.memoryRoom(false) === 0 && this.spoolCapBytes > 0) await this.spillSent();
      let n = this.memoryRoom(false) > 0 ? this.fillMemory(ring, onBytes, readable) : await this.fillSpool(ring, Math.min(readable, spoolLimit - this.end), onBytes);
      // No spool room (this upload's or everyone's): memory within the share after all, fresh or not.
      if (n === 0 && this.memoryRoom(true) > 0) n = this.fillMemory(ring, onBytes, readable);
      if (n === 0) return 'full';
      moved += n;
    }
  }

  /** Memory this upload may take fresh: its part of FRESH_TOTAL_BYTES, at least FRESH_MEMORY_BYTES. */
  private freshBytes(): number {
    return Math.max(FRESH_MEMORY_BYTES, Math.floor(FRESH_TOTAL_BYTES / Math.max(1, Atomics.load(this.ctx.words, G.UPLOADS_ALIVE))));
  }

  /**
   * Bytes the next memory fill may take: the rest of the tail piece, or a new piece within the share.
   * Past its fresh allowance (freshBytes), an upload that has a spool takes a new piece only as a
   * spare this thread holds (`anyPiece` false), else its bytes go to the spool.
   */
  private memoryRoom(anyPiece: boolean): number {
    const tail = this.segments.at(-1);
    if (tail && 'buf' in tail && tail.length < tail.buf.length) return tail.buf.length - tail.length;
    const limit = this.memoryShare();
    const piece = Math.min(MEMORY_PIECE_BYTES, limit);
    if (this.memoryBytes + piece > limit) return 0;
    if (!anyPiece && this.spoolCapBytes > 0 && this.memoryBytes + piece > this.freshBytes() && !hasSpareChunk(this.ctx, piece)) return 0;
    return piece;
  }

  private fillMemory(ring: RingReader, onBytes: (data: Uint8Array) => void, most: number): number {
    let tail = this.segments.at(-1);
    if (!tail || !('buf' in tail) || tail.length === tail.buf.length) {
      const size = Math.min(MEMORY_PIECE_BYTES, this.memoryShare());
      tail = { start: this.end, length: 0, buf: takeChunk(this.ctx, size) };
      this.memoryBytes += size;
      this.segments.push(tail);
    }
    const n = ring.read(tail.buf, tail.length, Math.min(most, tail.buf.length - tail.length));
    if (n > 0) onBytes(tail.buf.subarray(tail.length, tail.length + n));
    tail.length += n;
    this.end += n;
    return n;
  }

  private async fillSpool(ring: RingReader, readable: number, onBytes: (data: Uint8Array) => void): Promise<number> {
    const io = this.ioBytes();
    const want = Math.min(readable, io, this.spoolCapBytes - this.spoolBytes);
    if (want <= 0 || !this.reserveSpoolFor(want)) return 0;
    const file = this.current ?? (await this.newFile());
    // Written from the ring's own memory (one or two spans, where it wraps), consumed only once the
    // write is done: the client's thread cannot overwrite bytes not consumed, and the ring's memory
    // is touched already. (Copied first into a scratch buffer, each spool write took a slot of this
    // thread's slabs while it waited for the disk: with a hundred uploads spooling at once those
    // slots were mostly new memory, and first touches of it were 4 % of the gateway's CPU.)
    const spans = ringSpans(ring, want);
    const n = spans.reduce((a, s) => a + s.length, 0);
    if (n === 0) return 0;
    const filePos = await this.writeSpool(file, spans, n);
    // Re-initialised for another transfer meanwhile (this one is over): its bytes are not ours.
    if (ring.stale()) return 0;
    for (const s of spans) {
      onBytes(s);
      ring.consume(s.length);
    }
    countSpoolIo(this.ctx, G.SPOOLED_KIB, n);
    this.appendSpooled(file, filePos, n);
    return n;
  }

  private appendSpooled(file: SpoolFile, filePos: number, n: number): void {
    const tail = this.segments.at(-1);
    if (tail && 'file' in tail && tail.file === file && tail.filePos + tail.length === filePos) tail.length += n;
    else this.segments.push({ start: this.end, length: n, file, filePos });
    this.end += n;
  }

  private async newFile(): Promise<SpoolFile> {
    const path = join(this.spoolDir, `${this.ctx.threadKey}-${this.taskId}-${this.files++}.spool`);
    let handle: FileHandle;
    try {
      handle = await open(path, 'w+', 0o600);
    } catch (err) {
      throw spoolError(`spool file ${path}`, err);
    }
    const file: SpoolFile = { path, handle, writePos: 0, live: 0 };
    this.current = file;
    this.allFiles.add(file);
    return file;
  }

  /**
   * A call's try starts to send from `from` (each try, each call): no piece of it has been written
   * out yet. The socket of an earlier try is closed or done by then, and its body takes no more
   * pieces (upload-task.ts ends it when the next try starts).
   */
  beginTry(t: object, from: number): void {
    this.liveTry = t;
    this.drained = from;
  }

  /**
   * The body of try `t` was asked for its next piece after it handed out one of at least
   * RECYCLE_MIN_BYTES that ended at `to`: the socket wrote everything up to there (undici waited for
   * 'drain' or 'close' before asking), so memory below `to` is no longer read by it.
   */
  markDrained(t: object, to: number): void {
    if (t === this.liveTry && to > this.drained) this.drained = to;
  }

  /**
   * Moves the oldest memory pieces wholly below the drained offset (sent, and let go of by the socket)
   * to the spool in one write, and frees them. A piece released or cut (an acknowledgement) while the
   * write ran stays as it is and its bytes in the file count for nothing. Returns the memory freed.
   * Throws SpoolError when the write fails.
   */
  private async spillSent(): Promise<number> {
    const picks: { seg: Segment & { buf: Buffer }; start: number; length: number }[] = [];
    let bytes = 0;
    const most = Math.min(SPILL_BYTES, this.spoolCapBytes - this.spoolBytes);
    for (const seg of this.segments) {
      if (!('buf' in seg)) continue;
      if (seg.start + seg.length > this.drained || seg.length < seg.buf.length || bytes + seg.length > most) break;
      picks.push({ seg, start: seg.start, length: seg.length });
      bytes += seg.length;
    }
    if (bytes === 0 || !this.reserveSpoolFor(bytes)) return 0;
    let file: SpoolFile | null = null;
    let filePos: number;
    try {
      file = this.current ?? (await this.newFile());
      filePos = await this.writeSpool(file, picks.map((p) => p.seg.buf.subarray(0, p.length)), bytes);
    } catch (err) {
      if (!(err instanceof SpoolError)) throw err;
      // A spill only makes room: its bytes are still in memory, and the call that sent them is
      // acknowledged or retried from there. A disk that refuses it (full, failing) costs this upload
      // its spool, not the upload: memory only from now on (backpressure until each call's answer),
      // where a spool write that had to keep bytes it took from the ring fails the STOR with 452.
      this.spoolCapBytes = 0;
      Atomics.add(this.ctx.words, G.SPILL_FAILURES, 1);
      // Main logs it (transfer/index.ts watches this bell for capped Retry-Afters and tokens too).
      Atomics.add(this.ctx.words, G.REFRESH_BELL, 1);
      Atomics.notify(this.ctx.words, G.REFRESH_BELL);
      if (file) {
        if (file === this.current) this.current = null;
        if (file.live === 0) await this.dropFile(file);
      }
      this.giveBackSpool();
      return 0;
    }
    countSpoolIo(this.ctx, G.SPILLED_KIB, bytes);
    let freed = 0;
    let pos = filePos;
    for (const p of picks) {
      const i = this.segments.indexOf(p.seg);
      if (i < 0 || p.seg.start !== p.start || p.seg.length !== p.length) {
        // Acknowledged meanwhile (wholly or in part): those file bytes hold nothing retained.
        file.live -= p.length;
        this.spoolBytes -= p.length;
      } else {
        const prev = i > 0 ? this.segments[i - 1]! : null;
        if (prev && 'file' in prev && prev.file === file && prev.filePos + prev.length === pos && prev.start + prev.length === p.start) {
          prev.length += p.length;
          this.segments.splice(i, 1);
        } else this.segments[i] = { start: p.start, length: p.length, file, filePos: pos };
        this.memoryBytes -= p.seg.buf.length;
        freed += p.seg.buf.length;
        giveChunk(this.ctx, p.seg.buf);
      }
      pos += p.length;
    }
    if (file.live === 0) await this.dropFile(file);
    this.giveBackSpool();
    return freed;
  }

  /** Reserves spool allowance (whole KiB) for `bytes` more; false when everyone's spool is full. */
  private reserveSpoolFor(bytes: number): boolean {
    const kib = Math.ceil((this.spoolBytes + bytes) / 1024) - this.spoolKib;
    if (kib <= 0) return true;
    if (!reserveSpool(this.ctx, kib)) return false;
    this.spoolKib += kib;
    return true;
  }

  /**
   * Appends `bufs` (`n` bytes) to `file` and returns where they start. The space is claimed before
   * the write: a release running meanwhile must not restart the file. Throws SpoolError.
   */
  private async writeSpool(file: SpoolFile, bufs: Buffer[], n: number): Promise<number> {
    const filePos = file.writePos;
    file.writePos += n;
    file.live += n;
    this.spoolBytes += n;
    try {
      await writeFully(file.handle, bufs, filePos);
    } catch (err) {
      // Those bytes are not in the file (the space claimed stays claimed: later writes go after it).
      file.live -= n;
      this.spoolBytes -= n;
      throw spoolError('spool write failed', err);
    }
    return filePos;
  }

  private giveBackSpool(): void {
    const kib = Math.ceil(this.spoolBytes / 1024);
    if (kib < this.spoolKib) {
      releaseSpool(this.ctx, this.spoolKib - kib);
      this.spoolKib = kib;
    }
  }

  /**
   * Later spool writes go to a new file (called when a call takes its bytes): a file then holds at
   * most the bytes of two calls and is removed once both are acknowledged, so disk use stays near
   * what is retained.
   */
  rotate(): void {
    if (this.current && this.current.writePos > 0) this.current = null;
  }

  /**
   * The retained bytes [from, to) as a request body (memory views; spool files read back). A spool
   * piece of at least RECYCLE_MIN_BYTES is read into a pooled buffer that goes back to the pool when
   * the request asks for the next piece; a body closed early (return/throw) drops its lent buffer
   * instead (uncharged, never reused), and destroy() drops any a stalled body still holds.
   */
  async *body(from: number, to: number): AsyncGenerator<Buffer> {
    let lent: Buffer | null = null;
    try {
      for (const seg of this.segments.slice()) {
        const a = Math.max(from, seg.start);
        const b = Math.min(to, seg.start + seg.length);
        if (a >= b) continue;
        if ('buf' in seg) {
          yield seg.buf.subarray(a - seg.start, b - seg.start);
          continue;
        }
        for (let pos = a; pos < b; ) {
          const io = this.ioBytes();
          const n = Math.min(io, b - pos);
          let chunk: Buffer;
          if (n >= RECYCLE_MIN_BYTES) {
            chunk = takeChunk(this.ctx, io);
            this.lent.add(chunk);
            lent = chunk;
          } else chunk = Buffer.allocUnsafe(n);
          let got = 0;
          while (got < n) {
            const r = await seg.file.handle.read(chunk, got, n - got, seg.filePos + (pos - seg.start) + got);
            if (r.bytesRead === 0) throw new SpoolError(`spool file ${seg.file.path} is shorter than expected`, false);
            got += r.bytesRead;
          }
          countSpoolIo(this.ctx, G.READ_BACK_KIB, n);
          yield n === chunk.length ? chunk : chunk.subarray(0, n);
          // Asked for more: the socket is done with that piece (RECYCLE_MIN_BYTES).
          if (lent) this.giveBack(lent, true);
          lent = null;
          pos += n;
        }
      }
    } finally {
      // Closed early: the request may not be done with it; it only stops being charged.
      if (lent) this.giveBack(lent, false);
    }
  }

  /** Ends a read-back buffer's loan: to the pool for reuse, or just uncharged (`reuse` false). */
  private giveBack(buf: Buffer, reuse: boolean): void {
    if (!this.lent.delete(buf)) return; // destroy() already dropped it
    if (reuse) giveChunk(this.ctx, buf);
    else dropChunk(this.ctx, buf);
  }

  /** Drops the bytes before `upTo` (acknowledged by Dropbox). */
  async release(upTo: number): Promise<void> {
    while (this.segments.length > 0) {
      const seg = this.segments[0]!;
      if (seg.start >= upTo) break;
      const drop = Math.min(seg.length, upTo - seg.start);
      if ('buf' in seg) {
        const filling = seg === this.segments.at(-1) && seg.length < seg.buf.length;
        if (drop === seg.length && !filling) {
          this.segments.shift();
          this.memoryBytes -= seg.buf.length;
          giveChunk(this.ctx, seg.buf);
          continue;
        }
        // Partly acknowledged (an incorrect_offset), or the piece still being filled: keep the rest.
        seg.buf.copy(seg.buf, 0, drop, seg.length);
        seg.start += drop;
        seg.length -= drop;
        break;
      }
      seg.file.live -= drop;
      this.spoolBytes -= drop;
      if (drop < seg.length) {
        seg.start += drop;
        seg.filePos += drop;
        seg.length -= drop;
      } else this.segments.shift();
      if (seg.file.live === 0) await this.dropFile(seg.file);
    }
    this.start = Math.max(this.start, upTo);
    this.giveBackSpool();
  }

  private async dropFile(file: SpoolFile): Promise<void> {
    // The file being written goes too, never truncated and written again from 0: a spool write the
    // reader claimed while the truncate was on its way could land first and be erased, its bytes read
    // back as zeros (a retention test: 3 of 300 rounds). Later writes open a new file.
    if (file === this.current) this.current = null;
    this.allFiles.delete(file);
    await file.handle.close().catch(() => {});
    await unlink(file.path).catch(() => {});
  }

  /** Spool bytes held now. */
  spooled(): number {
    return this.spoolBytes;
  }

  /** Frees every buffer, gives the spool allowance back and removes the spool files. */
  async destroy(): Promise<void> {
    for (const seg of this.segments.splice(0)) if ('buf' in seg) giveChunk(this.ctx, seg.buf);
    for (const buf of this.lent) dropChunk(this.ctx, buf);
    this.lent.clear();
    this.memoryBytes = 0;
    this.spoolBytes = 0;
    if (this.spoolKib > 0) releaseSpool(this.ctx, this.spoolKib);
    this.spoolKib = 0;
    this.current = null;
    const files = [...this.allFiles];
    this.allFiles.clear();
    await Promise.all(files.map(async (f) => {
      await f.handle.close().catch(() => {});
      await unlink(f.path).catch(() => {});
    }));
  }
}
