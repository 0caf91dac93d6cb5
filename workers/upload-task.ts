// One upload: bytes from the transfer's ring are gathered into bounded chunks and appended to a
// Dropbox upload session (start / append_v2, the last with close=true), each append holding a permit
// of the account's request gate and carrying its own content_hash; faults resume at correct_offset.
// Runs on the worker the transfer is pinned to. Invariants: nothing is committed here (main's commit
// batcher does it, only for a result with ok=true, which needs a clean end of the ring); the hasher
// always covers exactly the bytes the session holds; the chunk buffer is charged to the budget.

import { RingReader } from 'native-free-ringbuf';
import type { ErrorCode } from '../src/errors.ts';
import { BLOCK_BYTES, ContentHasher, contentHash } from '../src/transfer/content-hash.ts';
import { backoffMs, classifyResponse, classifyThrown, contentRequest, sleep } from '../src/transfer/dropbox-http.ts';
import type { Failure } from '../src/transfer/dropbox-http.ts';
import type { Outcome } from '../src/transfer/request-gate.ts';
import { G } from '../src/transfer/shared-layout.ts';
import { codeForRing, ringCodeFor } from '../src/transfer/ring-codes.ts';
import type { TaskResult, UploadResumeToken, UploadTask } from '../src/transfer/task-wire.ts';
import { chargeChunk, countRetry, crashForTest, fairSliceBytes, refundChunk } from './thread-context.ts';
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
  let buf: Buffer | null = null;
  let chargedKib = 0;
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

  // Sends data as the next piece of the session (start when there is none yet).
  const send = async (data: Buffer, close: boolean): Promise<Sent> => {
    let sent = 0;
    let failedAttempts = 0;
    let throttles = 0;
    let tried = false;
    for (;;) {
      const permit = await ctx.gates.acquire(slot, () => ring.producerAborted());
      if (!permit) return { ok: false, code: codeForRing(ring.producerError()), message: 'upload stopped by its writer', aborted: true };
      let outcome: Outcome = { kind: 'failed' };
      let failure: Failure | null = null;
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
        if (failure?.kind === 'retry' && failure.throttle) {
          outcome = { kind: 'throttled', retryAfterMs: failure.retryAfterMs, lock: failure.throttle === 'lock' };
        }
        ctx.gates.release(permit, outcome);
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
      countRetry(ctx, slot);
      if (failure.throttle) {
        if (++throttles > 200) return { ok: false, code: 'DROPFTP_ERR_RATE_LIMITED', message: 'still throttled after 200 tries', aborted: false };
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

  try {
    for (;;) {
      const want = Math.max(1, Math.min(Atomics.load(ctx.words, G.UPLOAD_CHUNK_BYTES), fairSliceBytes(ctx, slot)));
      if (!buf || buf.length !== want) {
        if (chargedKib) refundChunk(ctx, chargedKib);
        buf = null;
        chargedKib = chargeChunk(ctx, want);
        buf = Buffer.allocUnsafe(want);
      }
      const got = await fill(ring, buf);
      if (got.aborted) return writerGone();
      let data = buf.subarray(0, got.n);
      if (skip > 0) {
        const s = Math.min(skip, data.length);
        hasher.update(data.subarray(0, s));
        skip -= s;
        data = data.subarray(s);
        if (skip > 0 && got.ended) {
          return stop('DROPFTP_ERR_BAD_OFFSET', `resumed upload ended ${skip} B before the session's ${offset} B`, true);
        }
        if (data.length === 0 && !got.ended) continue;
      }
      const result = await send(data, got.ended);
      if (!result.ok) {
        if (result.aborted) return writerGone();
        return stop(result.code, `upload ${task.path}: ${result.message}`, true);
      }
      hasher.update(data);
      offset += data.length;
      if (crashAt !== undefined && offset >= crashAt) crashForTest(ctx);
      if (got.ended) break;
    }
  } finally {
    if (chargedKib) refundChunk(ctx, chargedKib);
  }
  if (!sessionId) return stop('DROPFTP_ERR_INTERNAL', 'upload finished without a session', true);
  return { ok: true, kind: 'upload', sessionId, byteLength: offset, contentHash: hasher.digest() };
}

/** Reads from the ring until `buf` is full, the writer ended, or it aborted. */
async function fill(ring: RingReader, buf: Buffer): Promise<{ n: number; ended: boolean; aborted: boolean }> {
  let n = 0;
  while (n < buf.length) {
    const got = ring.read(buf, n, buf.length - n);
    n += got;
    if (got > 0) continue;
    if (ring.producerAborted()) return { n, ended: false, aborted: true };
    if (ring.isEnded()) return { n, ended: true, aborted: false };
    const waited = await ring.waitReadable(Math.min(buf.length - n, ring.capacity / 2));
    if (waited === 'closed' && ring.producerAborted()) return { n, ended: false, aborted: true };
  }
  return { n, ended: ring.isEnded(), aborted: false };
}
