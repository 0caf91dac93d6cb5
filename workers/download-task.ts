// One download: a single files/download call streamed to its end into the transfer's ring, resumed
// with Range from the byte already received only after a fault, and checked against content_hash
// before the ring ends. Runs on the worker the transfer is pinned to. Invariants: the ring ends
// cleanly only after every byte was delivered and the whole file's hash matched — a read from an
// offset (REST) still reads from byte 0 and hashes the prefix without delivering it, since
// content_hash covers the whole file; a full ring pauses the HTTP body (backpressure), it never cuts
// the call; every call start goes through the account's pacer; any failure aborts the ring with a
// coded error.

import { RingWriter } from 'native-free-ringbuf';
import type { ErrorCode } from '../src/errors.ts';
import { ContentHasher } from '../src/transfer/content-hash.ts';
import type { IncomingHttpHeaders } from 'node:http';
import { backoffMs, callOutcome, headerValue, sleep } from '../src/transfer/dropbox-http.ts';
import type { Failure } from '../src/transfer/dropbox-http.ts';
import { DirectCall } from '../src/transfer/direct-call.ts';
import type { DirectSink, SinkAnswer } from '../src/transfer/direct-call.ts';
import { codeForRing, ringCodeFor } from '../src/transfer/ring-codes.ts';
import { awaitFreshToken, readToken } from '../src/transfer/token-cell.ts';
import type { DownloadTask, FileMetadata, TaskResult } from '../src/transfer/task-wire.ts';
import { crashForTest, giveChunk, takeChunk } from './thread-context.ts';
import type { ThreadContext } from './thread-context.ts';

/** Attempts in a row without progress before a download gives up (429s are not counted). */
export const MAX_FAILED_ATTEMPTS = 10;
/** too_many_requests answers one download accepts before it gives up. */
export const MAX_THROTTLES = 200;
/** What Node reads from a socket at once (libuv's suggested size): most body pieces are at most this. */
const SOCKET_READ_BYTES = 64 * 1024;
/** A free span of the ring smaller than this (its end, when it wraps) is filled by a scratch read and a copy. */
const MIN_PLACED_BYTES = 4096;

export async function runDownload(ctx: ThreadContext, task: DownloadTask): Promise<TaskResult> {
  const ring = new RingWriter(task.ring);
  const slot = task.account.slot;
  const hasher = new ContentHasher();
  const crashAt = task.test?.crashWorkerAfterBytes;
  /** Bytes before this offset are fetched and hashed, not delivered. */
  const deliverFrom = task.offset;
  /** Bytes of the file received (hashed, and delivered from deliverFrom on). */
  let pos = 0;
  let total = -1;
  let metadata: FileMetadata | null = null;
  let failedAttempts = 0;
  let throttles = 0;
  let authRefreshes = 0;

  const fail = (code: ErrorCode, message: string): TaskResult => {
    ring.abort(ringCodeFor(code));
    return { ok: false, error: { code, message } };
  };
  const consumerGone = (): TaskResult => ({
    ok: false,
    error: { code: codeForRing(ring.consumerError()), message: 'download stopped by its reader' },
  });

  while (total < 0 || pos < total) {
    if (ring.consumerGone()) return consumerGone();
    if (!(await ctx.pacer.admit(slot, () => ring.consumerGone()))) return consumerGone();
    let failure: Failure | null;
    const tokenSeq = readToken(task.account.tokenCell).seq;
    const startedAt = pos;
    // Range only to resume: the first call reads the whole file, from byte 0 even for REST.
    const headers: Record<string, string> = pos > 0 ? { range: `bytes=${pos}-` } : {};
    const sink = RingSink();
    const call = new DirectCall({ pool: ctx.direct, account: task.account, route: 'files/download', arg: { path: task.path }, headers }, sink);
    sink.call = call;
    const outcome = await call.done;
    // Bytes already hashed are all delivered before anything else happens (a resume reads from pos).
    await sink.flushed;
    failure = outcome.failure;
    // Exactly one report per admitted call: a 2xx was reported as its headers came (sink.start).
    if (outcome.statusCode === 0) ctx.pacer.report(slot, { kind: 'failed' });
    else if (outcome.statusCode >= 300) await ctx.pacer.settle(slot, callOutcome(outcome.statusCode, failure));
    else if (!failure && pos < total) failure = { kind: 'retry', reason: `body ended at ${pos} of ${total} B`, retryAfterMs: 0, throttle: null };
    if (ring.consumerGone()) return consumerGone();
    if (pos > startedAt) failedAttempts = 0;
    if (!failure) continue;
    if (failure.kind === 'fatal') return fail(failure.code, `download ${task.path}: ${failure.reason}`);
    if (failure.kind === 'auth') {
      // The token expired mid-transfer: main fetches a fresh one (single flight per account); resume
      // from the byte already received.
      if (++authRefreshes > 2 || (await awaitFreshToken(task.account.tokenCell, ctx.words, tokenSeq)) !== 'fresh') {
        return fail('DROPFTP_ERR_UPSTREAM_AUTH', `download ${task.path}: ${failure.reason}`);
      }
      continue;
    }
    if (failure.kind !== 'retry') return fail('DROPFTP_ERR_UPSTREAM', `download ${task.path}: ${failure.reason}`);
    ctx.pacer.countRetry(slot);
    if (failure.throttle) {
      // The pacer holds the next call until the account's Retry-After window is over.
      if (++throttles > MAX_THROTTLES) return fail('DROPFTP_ERR_RATE_LIMITED', `download ${task.path}: still throttled after ${MAX_THROTTLES} tries`);
      continue;
    }
    if (++failedAttempts > MAX_FAILED_ATTEMPTS) {
      return fail('DROPFTP_ERR_UPSTREAM', `download ${task.path}: ${failedAttempts} attempts without progress, last: ${failure.reason}`);
    }
    await sleep(backoffMs(failedAttempts));
  }

  // (Assigned inside receive(): TypeScript's narrowing does not see it.)
  const meta = metadata as FileMetadata | null;
  if (!meta) return fail('DROPFTP_ERR_INTERNAL', 'download finished without metadata');
  const got = hasher.digest();
  if (meta.content_hash && got !== meta.content_hash) {
    return fail('DROPFTP_ERR_INTEGRITY', `${task.path}: content_hash ${got} of the bytes received ≠ ${meta.content_hash}`);
  }
  ring.end();
  return { ok: true, kind: 'download', metadata: meta, byteLength: pos - deliverFrom, verified: !!meta.content_hash };

  /**
   * Takes one 200/206 answer into the ring. The socket reads the body straight into the ring's free
   * span (space/placed: hashed there, then published); bytes that do not go there — the head's
   * tail, a prefix hashed but not delivered, a chunked body, a full ring — come as pieces from a
   * scratch buffer (data: hashed once, whole, then copied in). A piece the ring cannot take at once
   * pauses the socket until the reader made room (backpressure), and the rest goes in before it resumes.
   */
  function RingSink(this: void): DirectSink & { call: DirectCall | null; flushed: Promise<void> } {
    /** Bytes still to skip: a 200 to a ranged request carries the whole file again. */
    let skip = 0;
    /** A piece the ring could not take whole, and where its untaken part starts. */
    let pending: Buffer | null = null;
    let pendingAt = 0;
    /** The pooled buffer under `pending`, if it is one (back to the pool once pending is done). */
    let pendingBuf: Buffer | null = null;
    /** Ring index of the span space() gave last. */
    let placeAt = 0;
    const donePending = (): void => {
      pending = null;
      if (pendingBuf) giveChunk(ctx, pendingBuf);
      pendingBuf = null;
    };
    const sink = {
      call: null as DirectCall | null,
      /** Settles once no piece is pending (the call may have failed meanwhile: its bytes still go in). */
      flushed: Promise.resolve(),
      start(statusCode: number, headers: IncomingHttpHeaders): Failure | null {
        ctx.pacer.report(slot, { kind: 'ok' });
        const meta = parseResult(headerValue(headers['dropbox-api-result']));
        if (!meta) return { kind: 'fatal', code: 'DROPFTP_ERR_UPSTREAM', reason: 'download response without a valid Dropbox-API-Result header' };
        if (metadata && (meta.rev !== metadata.rev || meta.size !== metadata.size)) {
          return { kind: 'fatal', code: 'DROPFTP_ERR_UPSTREAM', reason: `${task.path} changed during the download (rev ${metadata.rev} → ${meta.rev})` };
        }
        metadata = meta;
        total = meta.size;
        if (deliverFrom > total) return { kind: 'fatal', code: 'DROPFTP_ERR_BAD_OFFSET', reason: `offset ${deliverFrom} is beyond the end of ${task.path} (${total} B)` };
        skip = statusCode === 200 ? pos : 0;
        if (statusCode === 206) {
          const start = Number(/bytes (\d+)-/.exec(headerValue(headers['content-range']) ?? '')?.[1] ?? NaN);
          if (start !== pos) return { kind: 'retry', reason: `Content-Range starts at ${start}, wanted ${pos}`, retryAfterMs: 0, throttle: null };
        }
        return null;
      },
      space(most: number): Uint8Array | null {
        // Only bytes that are delivered, in order, with nothing pending before them.
        if (pending || skip > 0 || pos < deliverFrom || total < 0) return null;
        const free = ring.reserve();
        const n = Math.min(free, most, total - pos);
        if (n < MIN_PLACED_BYTES) return null;
        placeAt = ring.reserveIndex();
        return ring.storage.subarray(placeAt, placeAt + n);
      },
      placed(n: number): SinkAnswer {
        // This thread's calls whose tokens came due while it moved bytes start now (pacer.ts).
        ctx.pacer.serveDue();
        // Hashed in ring memory, then published: the reader sees only hashed bytes.
        hasher.update(ring.storage.subarray(placeAt, placeAt + n));
        if (ring.commit(n) !== n || ring.consumerGone()) return { kind: 'closed', reason: 'download stopped by its reader' };
        pos += n;
        if (crashAt !== undefined && pos - deliverFrom >= crashAt) crashForTest(ctx);
        return true;
      },
      data(raw: Buffer): SinkAnswer {
        ctx.pacer.serveDue();
        let chunk = raw;
        if (skip > 0) {
          const s = Math.min(skip, chunk.length);
          skip -= s;
          chunk = chunk.subarray(s);
          if (chunk.length === 0) return true;
        }
        if (pos + chunk.length > total) return { kind: 'retry', reason: `body longer than the ${total} B promised`, retryAfterMs: 0, throttle: null };
        // Hashed once, whole (the bytes of a ring that closes mid-chunk are never delivered as a file).
        hasher.update(chunk);
        let off = 0;
        if (pos < deliverFrom) {
          off = Math.min(deliverFrom - pos, chunk.length);
          pos += off;
        }
        if (off < chunk.length) {
          const n = ring.write(chunk, off);
          off += n;
          pos += n;
        }
        if (ring.consumerGone()) return { kind: 'closed', reason: 'download stopped by its reader' };
        if (crashAt !== undefined && pos - deliverFrom >= crashAt) crashForTest(ctx);
        if (off === chunk.length) return true;
        // The ring is full: the piece lies in the connection's scratch buffer, valid only for this
        // call, so its rest is copied out, into a buffer of the thread's pool when it fits one
        // socket read (a fresh buffer each was external memory that forced the worker's major GCs).
        const rest = chunk.length - off;
        pendingBuf = rest <= SOCKET_READ_BYTES ? takeChunk(ctx, SOCKET_READ_BYTES) : null;
        pending = pendingBuf ? pendingBuf.subarray(0, chunk.copy(pendingBuf, 0, off)) : Buffer.from(chunk.subarray(off));
        pendingAt = 0;
        // After a tick: resume() must come after the call saw this `false` and paused the socket.
        sink.flushed = Promise.resolve().then(drain);
        return false;
      },
    };
    /**
     * Moves the pending rest into the ring as room appears, then resumes the socket (a no-op when
     * the call ended meanwhile). Only the reader going away drops it.
     */
    async function drain(): Promise<void> {
      while (pending) {
        const n = ring.write(pending, pendingAt);
        pendingAt += n;
        pos += n;
        if (pendingAt === pending.length) {
          donePending();
          if (crashAt !== undefined && pos - deliverFrom >= crashAt) crashForTest(ctx);
          sink.call?.resume();
          return;
        }
        if ((await ring.waitWritable(Math.min(pending.length - pendingAt, ring.capacity / 4))) === 'closed') {
          donePending();
          sink.call?.abort({ kind: 'closed', reason: 'download stopped by its reader' });
          return;
        }
      }
    }
    return sink;
  }
}

function parseResult(header: string | undefined): FileMetadata | null {
  if (!header) return null;
  try {
    const meta = JSON.parse(header) as FileMetadata;
    return typeof meta?.size === 'number' && Number.isSafeInteger(meta.size) && meta.size >= 0 && typeof meta.rev === 'string' ? meta : null;
  } catch {
    return null;
  }
}
