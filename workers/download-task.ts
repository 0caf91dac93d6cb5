// One download: files/download streamed into the transfer's ring, in turns granted by the account's
// request gate, resumed with Range after any fault, and checked against content_hash before the
// ring ends. Runs on the worker the transfer is pinned to. Invariants: the ring ends cleanly only
// after every byte was delivered and the whole file's hash matched — a read from an offset (REST)
// fetches and hashes the bytes before it too, without delivering them, since content_hash covers
// the whole file (a resumed RETR costs its prefix again, but never gets a 226 for bytes Dropbox did
// not hold); any failure aborts the
// ring with a coded error; a permit is never held while waiting for the consumer for long when
// others wait (the request is cut and resumed later from the byte already delivered).

import { RingWriter } from 'native-free-ringbuf';
import type { ErrorCode } from '../src/errors.ts';
import { ContentHasher } from '../src/transfer/content-hash.ts';
import { backoffMs, classifyResponse, classifyThrown, contentRequest, headerValue, rpcRequest, sleep } from '../src/transfer/dropbox-http.ts';
import type { Failure } from '../src/transfer/dropbox-http.ts';
import type { Outcome, Permit } from '../src/transfer/request-gate.ts';
import { codeForRing, ringCodeFor } from '../src/transfer/ring-codes.ts';
import { awaitFreshToken, readToken } from '../src/transfer/token-cell.ts';
import type { DownloadTask, FileMetadata, TaskResult } from '../src/transfer/task-wire.ts';
import { countRetry, crashForTest, fairSliceBytes } from './thread-context.ts';
import type { ThreadContext } from './thread-context.ts';

/** Attempts in a row without progress before a download gives up (429s are not counted). */
export const MAX_FAILED_ATTEMPTS = 10;
/** How long a contended request may sit on a full ring before it gives its turn away. */
const STALL_PREEMPT_MS = 500;

export async function runDownload(ctx: ThreadContext, task: DownloadTask): Promise<TaskResult> {
  const ring = new RingWriter(task.ring);
  const slot = task.account.slot;
  const hasher = new ContentHasher();
  const crashAt = task.test?.crashWorkerAfterBytes;
  /** Bytes before this offset are fetched and hashed, not delivered. */
  const deliverFrom = task.offset;
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

  // A permit kept through a 429: the retry runs in the same turn.
  let held: Permit | null = null;
  const dropHeld = (): void => {
    if (held) ctx.gates.release(held, { kind: 'failed' });
    held = null;
  };

  while (total < 0 || pos < total) {
    if (ring.consumerGone()) {
      dropHeld();
      return consumerGone();
    }
    // A turn is taken only once the ring has room for the whole slice, and a contended slice is no
    // larger than the ring: the response lands without waiting for the reader, so a permit is held
    // for the HTTP exchange only — not for the main thread's turns (that made rounds of 500
    // transfers under a cap of 8 last 2.5 s). A response that still stalls on the ring is cut (below).
    const fair = fairSliceBytes(ctx, slot);
    const slice = fair === Infinity ? fair : Math.min(fair, ring.capacity);
    const room = Math.min(slice, ring.capacity);
    if (!held && ring.writable() < room) {
      if ((await ring.waitWritable(room)) === 'closed') return consumerGone();
    }
    const permit: Permit | null = held ?? (await ctx.gates.acquire(slot, () => ring.consumerGone()));
    held = null;
    if (!permit) return consumerGone();
    let outcome: Outcome = { kind: 'failed' };
    let failure: Failure | null = null;
    const tokenSeq = readToken(task.account.tokenCell).seq;
    try {
      // Uncontended: open-ended (cut after a fair slice if others start waiting). Contended: a bounded
      // range, read to its end so the keep-alive connection survives (an empty file answers 416).
      const end = Math.min(total < 0 ? Infinity : total - 1, slice === Infinity ? Infinity : pos + slice - 1);
      const headers: Record<string, string> = {};
      if (pos > 0 || end !== Infinity) headers.range = `bytes=${pos}-${end === Infinity ? '' : end}`;
      const res = await contentRequest({ dispatcher: ctx.agent, account: task.account, route: 'files/download', arg: { path: task.path }, headers });
      if (res.statusCode !== 200 && res.statusCode !== 206) {
        failure = await classifyResponse(res);
        if (failure.kind === 'fatal' && failure.code === 'DROPFTP_ERR_BAD_OFFSET' && total < 0) {
          // 416: a range starting at the end of the file is unsatisfiable; REST at the size is legal
          // FTP and sends nothing. Ask for the metadata to tell the two apart.
          const meta = await fileMetadata(ctx, task);
          if (meta === 'transient') {
            // The lookup itself hit a 429/5xx/reset: try the whole step again rather than fail.
            failure = { kind: 'retry', reason: 'get_metadata after a 416 failed', retryAfterMs: 250, throttle: null };
          } else if (meta && meta.size === pos && deliverFrom <= meta.size) {
            metadata = meta;
            total = meta.size;
            failure = null;
            outcome = { kind: 'ok' };
          } else {
            return fail('DROPFTP_ERR_BAD_OFFSET', `offset ${pos} is beyond the end of ${task.path}`);
          }
        }
      } else {
        const meta = parseResult(headerValue(res.headers['dropbox-api-result']));
        if (!meta) {
          res.body.destroy();
          return fail('DROPFTP_ERR_UPSTREAM', 'download response without a valid Dropbox-API-Result header');
        }
        if (metadata && (meta.rev !== metadata.rev || meta.size !== metadata.size)) {
          res.body.destroy();
          return fail('DROPFTP_ERR_UPSTREAM', `${task.path} changed during the download (rev ${metadata.rev} → ${meta.rev})`);
        }
        metadata = meta;
        total = meta.size;
        if (deliverFrom > total) {
          res.body.destroy();
          return fail('DROPFTP_ERR_BAD_OFFSET', `offset ${deliverFrom} is beyond the end of ${task.path} (${total} B)`);
        }
        // A 200 to a ranged request carries the whole file: skip what was already delivered.
        let skip = res.statusCode === 200 ? pos : 0;
        if (res.statusCode === 206) {
          const start = Number(/bytes (\d+)-/.exec(headerValue(res.headers['content-range']) ?? '')?.[1] ?? NaN);
          if (start !== pos) {
            res.body.destroy();
            failure = { kind: 'retry', reason: `Content-Range starts at ${start}, wanted ${pos}`, retryAfterMs: 0, throttle: null };
          }
        }
        if (!failure) {
          const startedAt = pos;
          let preempted = false;
          try {
            for await (const raw of res.body) {
              let chunk = raw as Buffer;
              if (skip > 0) {
                const s = Math.min(skip, chunk.length);
                skip -= s;
                chunk = chunk.subarray(s);
              }
              if (pos + chunk.length > total) chunk = chunk.subarray(0, Math.max(0, total - pos));
              let off = 0;
              if (pos < deliverFrom) {
                const prefix = Math.min(deliverFrom - pos, chunk.length);
                hasher.update(chunk.subarray(0, prefix));
                off = prefix;
                pos += prefix;
              }
              while (off < chunk.length) {
                const n = ring.write(chunk, off);
                if (n > 0) {
                  hasher.update(chunk.subarray(off, off + n));
                  off += n;
                  pos += n;
                  continue;
                }
                const waited = await ring.waitWritable(Math.min(chunk.length - off, ring.capacity / 4), STALL_PREEMPT_MS);
                if (waited === 'closed') break;
                if (waited === 'timeout' && ctx.gates.contention(slot) > 0) {
                  preempted = true;
                  break;
                }
              }
              if (ring.consumerGone() || preempted) break;
              if (crashAt !== undefined && pos - deliverFrom >= crashAt) crashForTest(ctx);
              // Uncontended reads run open-ended; once others wait, cut after a fair slice.
              if (end === Infinity && pos - startedAt >= fairSliceBytes(ctx, slot)) {
                preempted = true;
                break;
              }
            }
          } catch (err) {
            failure = classifyThrown(err);
          }
          if (preempted || ring.consumerGone()) res.body.destroy();
          if (pos > startedAt) failedAttempts = 0;
          if (!failure) outcome = { kind: 'ok', bytes: pos - startedAt };
          if (!failure && !preempted && end === Infinity && pos < total && !ring.consumerGone()) {
            failure = { kind: 'retry', reason: `body ended at ${pos} of ${total} B`, retryAfterMs: 0, throttle: null };
          }
        }
      }
    } catch (err) {
      failure = classifyThrown(err);
    } finally {
      if (failure?.kind === 'retry' && failure.throttle) held = permit;
      else ctx.gates.release(permit, outcome);
    }
    if (ring.consumerGone()) {
      dropHeld();
      return consumerGone();
    }
    if (!failure) continue;
    if (failure.kind === 'auth') {
      // The token expired mid-transfer: main fetches a fresh one (single flight per account); resume
      // from the byte already delivered.
      if (++authRefreshes > 2 || (await awaitFreshToken(task.account.tokenCell, ctx.words, tokenSeq)) !== 'fresh') {
        return fail('DROPFTP_ERR_UPSTREAM_AUTH', `download ${task.path}: ${failure.reason}`);
      }
      continue;
    }
    if (failure.kind !== 'retry') {
      const code = failure.kind === 'fatal' ? failure.code : 'DROPFTP_ERR_UPSTREAM';
      return fail(code, `download ${task.path}: ${failure.reason}`);
    }
    countRetry(ctx, slot);
    if (failure.throttle && held) {
      if (++throttles > 200) {
        dropHeld();
        return fail('DROPFTP_ERR_RATE_LIMITED', `download ${task.path}: still throttled after 200 tries`);
      }
      await ctx.gates.retryAfterThrottle(held, failure.retryAfterMs, failure.throttle === 'lock', throttles);
      continue;
    }
    if (++failedAttempts > MAX_FAILED_ATTEMPTS) {
      return fail('DROPFTP_ERR_UPSTREAM', `download ${task.path}: ${failedAttempts} attempts without progress, last: ${failure.reason}`);
    }
    await sleep(backoffMs(failedAttempts));
  }

  if (!metadata) return fail('DROPFTP_ERR_INTERNAL', 'download finished without metadata');
  const got = hasher.digest();
  if (metadata.content_hash && got !== metadata.content_hash) {
    return fail('DROPFTP_ERR_INTEGRITY', `${task.path}: content_hash ${got} of the bytes received ≠ ${metadata.content_hash}`);
  }
  ring.end();
  return { ok: true, kind: 'download', metadata, byteLength: pos - deliverFrom, verified: !!metadata.content_hash };
}

/** The file's metadata; null when it is gone or not a file; 'transient' on 429/5xx/network errors. */
async function fileMetadata(ctx: ThreadContext, task: DownloadTask): Promise<FileMetadata | null | 'transient'> {
  try {
    const res = await rpcRequest(ctx.agent, task.account, 'files/get_metadata', { path: task.path });
    if (res.statusCode !== 200) {
      await res.body.dump();
      return res.statusCode === 429 || res.statusCode >= 500 ? 'transient' : null;
    }
    const meta = (await res.body.json()) as FileMetadata;
    return typeof meta?.size === 'number' ? meta : null;
  } catch {
    return 'transient';
  }
}

function parseResult(header: string | undefined): FileMetadata | null {
  if (!header) return null;
  try {
    const meta = JSON.parse(header) as FileMetadata;
    return typeof meta?.size === 'number' && typeof meta.rev === 'string' ? meta : null;
  } catch {
    return null;
  }
}
