// One upload: bytes from the transfer's ring are gathered into bounded chunks and appended to a
// Dropbox upload session (start / append_v2, the last with close=true), each append holding a permit
// of the account's request gate and carrying its own content_hash; faults resume at correct_offset.
// Runs on the worker the transfer is pinned to. Invariants: nothing is committed here (main's commit
// batcher does it, only for a result with ok=true, which needs a clean end of the ring); the hasher
// always covers exactly the bytes the session holds; an append buffer is taken only while a permit
// is held (so their total is bounded by the request budget) and is charged to the memory budget.

import { RingReader } from 'native-free-ringbuf';
import type { ErrorCode } from '../src/errors.ts';
import { BLOCK_BYTES, ContentHasher, contentHash } from '../src/transfer/content-hash.ts';
import { backoffMs, classifyResponse, classifyThrown, contentRequest, sleep } from '../src/transfer/dropbox-http.ts';
import type { Failure } from '../src/transfer/dropbox-http.ts';
import type { Outcome, Permit } from '../src/transfer/request-gate.ts';
import { codeForRing, ringCodeFor } from '../src/transfer/ring-codes.ts';
import { awaitFreshToken, readToken } from '../src/transfer/token-cell.ts';
import type { TaskResult, UploadResumeToken, UploadTask } from '../src/transfer/task-wire.ts';
import { appendBytes, countRetry, crashForTest, giveChunk, takeChunk } from './thread-context.ts';
import type { ThreadContext } from './thread-context.ts';

export const MAX_FAILED_ATTEMPTS = 10;

type Sent = { ok: true } | { ok: false; code: ErrorCode; message: string; aborted: boolean };

export async function runUpload(ctx: ThreadContext, task: UploadTask): Promise<TaskResult> {
  const ring = new RingReader(task.ring);
  const slot = task.account.slot;
  const resume = task.resume;
  const hasher = resume ? ContentHasher.resume(resume.blockDigests) : new ContentHasher();
  let sessionId: string | null = resume?.sessionId ?? null;
  let offset = resume?.sessionOffset ?? 0; // bytes the session holds
  let skip = resume ? resume.sessionOffset - resume.offset : 0; // resent bytes the session already has
  const crashAt = task.test?.crashWorkerAfterBytes;

  const token = (): UploadResumeToken | undefined => {
    if (!sessionId) return undefined;
    const blockDigests = hasher.blockDigests();
    return { sessionId, sessionOffset: offset, offset: blockDigests.length * BLOCK_BYTES, blockDigests };
  };
  const stop = (code: ErrorCode, message: string, abortRing: boolean): TaskResult => {
    if (abortRing) ring.abort(ringCodeFor(code));
    const resumeAt = token();
    return resumeAt ? { ok: false, error: { code, message }, resume: resumeAt } : { ok: false, error: { code, message } };
  };
  const writerGone = (): TaskResult => stop(codeForRing(ring.producerError()), 'upload stopped by its writer', false);

  // Sends data as the next piece of the session (start when there is none yet). The first attempt
  // runs on `first`, the permit the caller holds; retries wait for a new turn.
  const send = async (data: Buffer, close: boolean, first: Permit): Promise<Sent> => {
    let sent = 0;
    let failedAttempts = 0;
    let throttles = 0;
    let authRefreshes = 0;
    let tried = false;
    let held: Permit | null = first;
    for (;;) {
      if (held && ring.producerAborted()) {
        ctx.gates.release(held, { kind: 'failed' });
        held = null;
      }
      const permit: Permit | null = held ?? (ring.producerAborted() ? null : await ctx.gates.acquire(slot, () => ring.producerAborted()));
      held = null;
      if (!permit) return { ok: false, code: codeForRing(ring.producerError()), message: 'upload stopped by its writer', aborted: true };
      let outcome: Outcome = { kind: 'failed' };
      let failure: Failure | null = null;
      const tokenSeq = readToken(task.account.tokenCell).seq;
      try {
        const body = data.subarray(sent);
        const res = sessionId
          ? await contentRequest({
              dispatcher: ctx.agent,
              account: task.account,
              route: 'files/upload_session/append_v2',
              arg: { cursor: { session_id: sessionId, offset: offset + sent }, close, content_hash: contentHash(body) },
              body,
            })
          : await contentRequest({
              dispatcher: ctx.agent,
              account: task.account,
              route: 'files/upload_session/start',
              arg: { close, content_hash: contentHash(body) },
              body,
            });
        tried = true;
        if (res.statusCode === 200) {
          const text = await res.body.text();
          if (!sessionId) {
            const id = (JSON.parse(text) as { session_id?: unknown }).session_id;
            if (typeof id !== 'string') throw new Error('upload_session/start returned no session_id');
            sessionId = id;
          }
          outcome = { kind: 'ok', bytes: body.length };
        } else {
          failure = await classifyResponse(res);
        }
      } catch (err) {
        tried = true;
        failure = classifyThrown(err);
      } finally {
        // Throttled: keep the permit and retry in the same turn (request-gate.ts).
        if (failure?.kind === 'retry' && failure.throttle) held = permit;
        else ctx.gates.release(permit, outcome);
      }
      if (!failure) return { ok: true };
      if (failure.kind === 'offset') {
        // The session holds correct_offset bytes: an earlier try landed (fully or partly).
        const landed = failure.correctOffset - offset;
        if (landed === data.length) return { ok: true }; // the close flag travelled with those bytes
        if (landed >= 0 && landed < data.length) {
          sent = landed;
          countRetry(ctx, slot);
          continue;
        }
        return { ok: false, code: 'DROPFTP_ERR_UPSTREAM', message: `session at ${failure.correctOffset}, expected ${offset}..${offset + data.length}`, aborted: false };
      }
      if (failure.kind === 'closed') {
        // A closing append that landed before its reply was lost (rclone and the JS uploader agree).
        if (close && tried) return { ok: true };
        return { ok: false, code: 'DROPFTP_ERR_UPSTREAM', message: `session closed: ${failure.reason}`, aborted: false };
      }
      if (failure.kind === 'fatal') return { ok: false, code: failure.code, message: failure.reason, aborted: false };
      if (failure.kind === 'auth') {
        // The token expired mid-transfer: main fetches a fresh one (single flight per account).
        if (++authRefreshes > 2 || (await awaitFreshToken(task.account.tokenCell, ctx.words, tokenSeq)) !== 'fresh') {
          return { ok: false, code: 'DROPFTP_ERR_UPSTREAM_AUTH', message: failure.reason, aborted: false };
        }
        continue;
      }
      countRetry(ctx, slot);
      if (failure.throttle && held) {
        if (++throttles > 200) {
          ctx.gates.release(held, { kind: 'failed' });
          return { ok: false, code: 'DROPFTP_ERR_RATE_LIMITED', message: 'still throttled after 200 tries', aborted: false };
        }
        await ctx.gates.retryAfterThrottle(held, failure.retryAfterMs, failure.throttle === 'lock', throttles);
        continue;
      }
      if (++failedAttempts > MAX_FAILED_ATTEMPTS) {
        return { ok: false, code: 'DROPFTP_ERR_UPSTREAM', message: `${failedAttempts} failed attempts, last: ${failure.reason}`, aborted: false };
      }
      // A reset or 5xx: the session may or may not hold the piece; resending at the offset we
      // believe in either lands or gets incorrect_offset with the offset to go on from.
      await sleep(backoffMs(failedAttempts));
    }
  };

  for (;;) {
    if (skip > 0) {
      // A resumed upload: the client resends bytes the session already holds; hash them, send nothing.
      const scratch = Buffer.allocUnsafe(Math.min(skip, 64 * 1024));
      const got = await fill(ring, scratch, () => false);
      if (got.aborted) return writerGone();
      hasher.update(scratch.subarray(0, got.n));
      skip -= got.n;
      if (skip > 0 && got.ended) return stop('DROPFTP_ERR_BAD_OFFSET', `resumed upload ended ${skip} B before the session's ${offset} B`, true);
      if (!got.ended || skip > 0) continue;
    }
    // A turn is asked for only once the ring holds enough to be worth one (or the data ended), so
    // a slow or idle client never sits in the account's queue.
    if ((await ring.waitReadable(ring.capacity / 2)) === 'closed' && ring.producerAborted()) return writerGone();
    const permit = await ctx.gates.acquire(slot, () => ring.producerAborted());
    if (!permit) return writerGone();
    // The append buffer exists only while this transfer holds a permit: buffers in use are bounded
    // by the request budget, not by the number of uploads (issue 4, storm of 1,000 STORs).
    const want = appendBytes(ctx, slot, offset);
    const buf = takeChunk(ctx, want);
    let sent: Sent;
    let got: Filled;
    try {
      got = await fill(ring, buf, () => ctx.gates.contention(slot) > 0);
      if (got.aborted) {
        ctx.gates.release(permit, { kind: 'ok' });
        return writerGone();
      }
      const data = buf.subarray(0, got.n);
      sent = await send(data, got.ended, permit);
      if (sent.ok) hasher.update(data);
    } finally {
      giveChunk(ctx, buf);
    }
    if (!sent.ok) {
      if (sent.aborted) return writerGone();
      return stop(sent.code, `upload ${task.path}: ${sent.message}`, true);
    }
    offset += got.n;
    if (crashAt !== undefined && offset >= crashAt) crashForTest(ctx);
    if (got.ended) break;
  }
  if (!sessionId) return stop('DROPFTP_ERR_INTERNAL', 'upload finished without a session', true);
  return { ok: true, kind: 'upload', sessionId, byteLength: offset, contentHash: hasher.digest() };
}

type Filled = { n: number; ended: boolean; aborted: boolean };

/** A permit-holder whose client goes quiet this long sends what it has when others wait. */
const IDLE_CUT_MS = 200;

/**
 * Reads from the ring until `buf` is full, the writer ended or aborted, or — with at least one byte
 * read — the ring stayed empty for IDLE_CUT_MS while `contended()` (a slow client must not hold a
 * turn that others wait for).
 */
async function fill(ring: RingReader, buf: Buffer, contended: () => boolean): Promise<Filled> {
  let n = 0;
  while (n < buf.length) {
    const got = ring.read(buf, n, buf.length - n);
    n += got;
    if (got > 0) continue;
    if (ring.producerAborted()) return { n, ended: false, aborted: true };
    if (ring.isEnded()) return { n, ended: true, aborted: false };
    const waited = await ring.waitReadable(Math.min(buf.length - n, ring.capacity / 2), IDLE_CUT_MS);
    if (waited === 'closed' && ring.producerAborted()) return { n, ended: false, aborted: true };
    if (waited === 'timeout' && n > 0 && ring.readable() === 0 && contended()) return { n, ended: false, aborted: false };
  }
  return { n, ended: ring.isEnded(), aborted: false };
}
