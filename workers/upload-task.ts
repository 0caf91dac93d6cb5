// One upload: the client's bytes flow from the transfer's ring into retention (memory, then spool)
// and go to Dropbox in as few calls as retention allows — the first bytes with upload_session/start,
// then append_v2 calls of up to 150 MiB, the last one closing the session. Runs on the worker the
// upload is pinned to. Invariants: a call starts only once all its bytes are retained (so its length,
// its close flag and its content_hash are known, and a failed call is sent again from retention,
// invisibly to the client); close=false only when more bytes are known to follow; nothing is
// committed here (main's commit batcher does it for a result with ok=true, which needs a clean end
// of the ring); the hasher covers every byte read, in file order; retention is freed on every path.

import { RingReader } from 'native-free-ringbuf';
import type { ErrorCode } from '../src/errors.ts';
import { BLOCK_BYTES, ContentHasher } from '../src/transfer/content-hash.ts';
import { backoffMs, callOutcome, classifyResponse, classifyThrown, contentRequest, sleep } from '../src/transfer/dropbox-http.ts';
import type { Failure } from '../src/transfer/dropbox-http.ts';
import { codeForRing, ringCodeFor } from '../src/transfer/ring-codes.ts';
import { G } from '../src/transfer/shared-layout.ts';
import { awaitFreshToken, readToken } from '../src/transfer/token-cell.ts';
import type { TaskResult, UploadResumeToken, UploadTask } from '../src/transfer/task-wire.ts';
import { RECYCLE_MIN_BYTES, Retention, SpoolError } from './retention.ts';
import { retainLimit } from './upload-lead.ts';
import { crashForTest } from './thread-context.ts';
import type { ThreadContext } from './thread-context.ts';

export const MAX_FAILED_ATTEMPTS = 10;
export const MAX_THROTTLES = 200;
/** Dropbox takes at most 150 MiB per upload request. */
export const MAX_CALL_BYTES = 150 * 1024 * 1024;
/** Spool one upload may hold: two calls' worth, so the next call fills while one is in flight. */
export const MAX_SPOOL_PER_UPLOAD = 2 * MAX_CALL_BYTES;
/** Longest the reader waits for half a ring before it takes what the ring holds. */
const READER_BATCH_MS = 20;

/** ok: the session holds the bytes up to `to`. */
type CallResult = { ok: true; to: number } | { ok: false; code: ErrorCode; message: string; aborted: boolean };

/**
 * A wake-up for the reader, the sender and a call's body of one upload. Fires are counted: a waiter
 * takes mark() before it looks at the state it waits on, and wait(mark) returns at once if a fire
 * came in between (a fire while the waiter was busy elsewhere is not lost).
 */
class Signal {
  private fired = 0;
  private waiters: (() => void)[] = [];
  mark(): number {
    return this.fired;
  }
  wait(since: number): Promise<void> {
    if (this.fired !== since) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  fire(): void {
    this.fired++;
    for (const w of this.waiters.splice(0)) w();
  }
}

/** One try of a call whose body is a generator: where its body got to; dead once the try is over. */
interface BodyTry {
  pos: number;
  dead: boolean;
}

export async function runUpload(ctx: ThreadContext, task: UploadTask): Promise<TaskResult> {
  const ring = new RingReader(task.ring);
  const slot = task.account.slot;
  const resume = task.resume;
  const hasher = resume ? ContentHasher.resume(resume.blockDigests) : new ContentHasher();
  let sessionId: string | null = resume?.sessionId ?? null;
  /** Bytes the session holds (acknowledged by Dropbox). */
  let acked = resume?.sessionOffset ?? 0;
  const crashAt = task.test?.crashWorkerAfterBytes;
  const spoolLimit = Atomics.load(ctx.words, G.SPOOL_LIMIT_KIB) * 1024;
  const spoolCap = task.spoolDir ? Math.min(MAX_SPOOL_PER_UPLOAD, spoolLimit) : 0;
  const retention = new Retention(ctx, task.spoolDir, task.id, spoolCap, acked);

  const token = (): UploadResumeToken | undefined => {
    if (!sessionId) return undefined;
    const blocks = Math.floor(acked / BLOCK_BYTES);
    return { sessionId, sessionOffset: acked, offset: blocks * BLOCK_BYTES, blockDigests: hasher.blockDigests().slice(0, blocks) };
  };
  const stop = (code: ErrorCode, message: string, abortRing: boolean): TaskResult => {
    if (abortRing) ring.abort(ringCodeFor(code));
    const resumeAt = token();
    return resumeAt ? { ok: false, error: { code, message }, resume: resumeAt } : { ok: false, error: { code, message } };
  };
  const writerGone = (): TaskResult => stop(codeForRing(ring.producerError()), 'upload stopped by its writer', false);
  let reader: Promise<void> = Promise.resolve();
  /** Fired when retention frees bytes (an acknowledgement) or a call's body takes bytes (the lead shrinks). */
  const room = new Signal();
  /** Fired when the reader's state changes (bytes retained, the client ended) and when a call's try ends. */
  const changed = new Signal();
  /** File offset up to which the current (or last) call's body has taken bytes: the lead is end - sentTo. */
  let sentTo = acked;
  /** A streamed call's body is open: bytes it has not taken yet wait in memory, not in the spool. */
  let streamOpen = false;
  /** That body's start and the backlog it found (retainLimit). */
  let streamFrom = 0;
  let streamBacklogEnd = 0;
  /** The last call try: ended when the next one starts (its answer has been read by then). */
  let lastTry: BodyTry | null = null;
  const flow = ctx.uploadFlow;
  flow.begin();

  try {
    // A resumed upload: the client resends bytes the session already holds; hash them, send nothing.
    let skip = resume ? resume.sessionOffset - resume.offset : 0;
    const scratch = skip > 0 ? Buffer.allocUnsafe(Math.min(skip, 64 * 1024)) : null;
    while (skip > 0) {
      const n = ring.read(scratch!, 0, Math.min(skip, scratch!.length));
      if (n > 0) {
        hasher.update(scratch!.subarray(0, n));
        skip -= n;
        continue;
      }
      if (ring.producerAborted()) return writerGone();
      if (ring.isEnded()) return stop('DROPFTP_ERR_BAD_OFFSET', `resumed upload ended ${skip} B before the session's ${acked} B`, true);
      await ring.waitReadable(1);
    }

    // The reader: ring → retention (and the hasher), as long as retention has room.
    // One object, so TypeScript does not narrow what the reader changes behind the sender's back.
    // full: the last fill stopped for want of room; lead: because the client is as far ahead as it may be.
    const rd = { state: 'open' as 'open' | 'ended' | 'aborted' | 'failed', error: null as Error | null, full: false, lead: false, stopped: false };
    reader = (async (): Promise<void> => {
      while (!rd.stopped) {
        let r;
        // Taken before the fill: room given back while it runs (an acknowledgement, a body taking
        // bytes, which moves the lead's limit) must not be waited for afterwards.
        const roomSeen = room.mark();
        try {
          // Not further ahead of Dropbox than this upload's share of the bandwidth sends in LEAD_SECONDS,
          // nor than MAX_LEAD_BYTES (upload-lead.ts). While a streamed call takes the bytes as they
          // come, down to the memory share ahead once its backlog is sent: the body then sends from
          // memory and what it sent is spilled (Retention.spillSent); a lead beyond the share went to
          // the spool only to be read back a moment later (retainLimit).
          const lead = task.test?.leadBytes ?? flow.leadLimit();
          const stream = streamOpen && spoolCap > 0 ? { from: streamFrom, backlogEnd: streamBacklogEnd, memoryShare: retention.memoryShare() } : null;
          const limit = retainLimit(acked, sentTo, lead, stream);
          r = await retention.fill(ring, (data) => hasher.update(data), limit.end, limit.spoolEnd);
        } catch (err) {
          rd.error = err as Error;
          rd.state = 'failed';
          return changed.fire();
        }
        if (crashAt !== undefined && retention.end >= crashAt) crashForTest(ctx);
        if (r === 'ended' || r === 'aborted') {
          rd.state = r;
          return changed.fire();
        }
        rd.full = r === 'full' || r === 'lead';
        rd.lead = r === 'lead';
        changed.fire();
        if (rd.full) {
          // Room comes back with an acknowledgement, or (lead) as a streamed call's body takes
          // bytes; the sender also wants to know when the client sends more (then what is retained
          // can go with close=false) or ends.
          if (ring.readable() > 0) await room.wait(roomSeen);
          else await Promise.race([room.wait(roomSeen), ring.waitReadable(1)]);
          continue;
        }
        // Woken once half a ring is there (or the end), not per socket read of the client; a
        // slower client's bytes are taken after READER_BATCH_MS all the same.
        if ((await ring.waitReadable(ring.capacity >>> 1, READER_BATCH_MS)) === 'timeout') await ring.waitReadable(1);
      }
    })();

    try {
      for (;;) {
        const changedSeen = changed.mark();
        if (rd.state === 'aborted' || ring.producerAborted()) {
          await flushForResume();
          return writerGone();
        }
        if (rd.state === 'failed') {
          const err = rd.error;
          const code: ErrorCode = err instanceof SpoolError && err.noSpace ? 'DROPFTP_ERR_LOCAL_SPACE' : 'DROPFTP_ERR_INTERNAL';
          return stop(code, `upload ${task.path}: ${err?.message ?? 'spool failed'}`, true);
        }
        const cut = nextCall();
        let sent: CallResult;
        if (cut) {
          retention.rotate();
          sent = await call(acked, cut.to, cut.close, false);
        } else if (rd.lead && rd.state === 'open' && retention.end > acked) {
          // The client is as far ahead of Dropbox as it may be: a call of unknown length takes the
          // bytes as they come (close=false; retention keeps them until it is acknowledged).
          retention.rotate();
          sent = await call(acked, acked + streamLimit(), false, false, streamed);
        } else {
          await changed.wait(changedSeen);
          continue;
        }
        if (!sent.ok) {
          if (sent.aborted) {
            await flushForResume();
            return writerGone();
          }
          return stop(sent.code, `upload ${task.path}: ${sent.message}`, true);
        }
        acked = sent.to;
        await retention.release(acked);
        room.fire();
        if (cut?.close) break;
      }
    } finally {
      rd.stopped = true;
      room.fire();
      changed.fire();
    }
    if (ring.producerAborted()) {
      // Aborted while its closing call ran (the client went after its last byte): that call closed
      // the session, which takes no more appends, so it is not offered for a resume (a resume from
      // it failed every time with 451).
      sessionId = null;
      return writerGone();
    }
    await reader;
    if (!sessionId) return stop('DROPFTP_ERR_INTERNAL', 'upload finished without a session', true);
    return { ok: true, kind: 'upload', sessionId, byteLength: acked, contentHash: hasher.digest() };

    /**
     * The client went away (or ABOR): what is retained up to the last whole 4 MiB block goes into
     * the session (close=false, never committed), so the resume token lets the client continue
     * from there (REST + STOR) instead of from where the last call ended. Not on shutdown.
     */
    async function flushForResume(): Promise<void> {
      rd.stopped = true;
      room.fire();
      await reader;
      if (codeForRing(ring.producerError()) === 'DROPFTP_ERR_SHUTTING_DOWN') return;
      const to = Math.min(acked + MAX_CALL_BYTES, retention.end - (retention.end % BLOCK_BYTES));
      if (Math.floor(to / BLOCK_BYTES) <= Math.floor(acked / BLOCK_BYTES)) return;
      const sent = await call(acked, to, false, true);
      if (sent.ok) acked = sent.to;
    }

    /**
     * The body of a streamed call from `from`: what is retained, then what the reader retains while
     * the call runs, up to `limit`. It ends once everything retained is sent and the client ended
     * (or stopped), or retention is full (room comes back only with this call's acknowledgement).
     */
    async function* streamed(limit: number, t: BodyTry): AsyncGenerator<Buffer> {
      sentTo = t.pos;
      streamFrom = t.pos;
      streamBacklogEnd = retention.end;
      flow.bodyOpen();
      streamOpen = true;
      try {
        for (;;) {
          const changedSeen = changed.mark();
          if (t.dead) return;
          const end = Math.min(retention.end, limit);
          if (t.pos < end) {
            // A try that is over (its request failed) takes no more: the loop's next turn ends it.
            yield* sendPieces(retention.body(t.pos, end), t);
            continue;
          }
          if (t.pos >= limit || rd.state !== 'open' || rd.stopped || ring.producerAborted()) return;
          if (rd.full && !rd.lead) return;
          await changed.wait(changedSeen);
        }
      } finally {
        streamOpen = false;
        flow.bodyClose();
      }
    }

    /**
     * The next call, if one should start now: everything once the client ended (close=true; in
     * full-size calls first while that is more than MAX_CALL_BYTES); a
     * full-size call once more bytes are known to follow; what is retained when retention is full
     * and the client has more.
     */
    function nextCall(): { to: number; close: boolean } | null {
      const pending = retention.end - acked;
      // Ended: the rest in one closing call, unless it is more than one call may carry (retention
      // holds up to two calls' worth of spool plus the memory share).
      if (rd.state === 'ended') return pending <= MAX_CALL_BYTES ? { to: retention.end, close: true } : { to: acked + callTarget(), close: false };
      const target = callTarget();
      if (pending >= target && (pending > target || ring.readable() > 0)) return { to: acked + target, close: false };
      if (rd.full && !rd.lead && pending > 0 && ring.readable() > 0) return { to: retention.end, close: false };
      return null;
    }
  } finally {
    flow.end();
    // The reader stops at its next step (the ring is ended or aborted by now, or `stopped` is set).
    await reader;
    await retention.destroy();
  }

  /** The body of a call from `from` on; each piece it hands to the request counts as sent. */
  async function* counted(body: AsyncGenerator<Buffer>, t: BodyTry): AsyncGenerator<Buffer> {
    sentTo = t.pos;
    flow.bodyOpen();
    try {
      yield* sendPieces(body, t);
    } finally {
      flow.bodyClose();
    }
  }

  /**
   * The pieces of `body` as try `t` hands them to its request: each moves the try's position and
   * counts as sent (the lead, the thread's rate); a try that is over takes no more.
   */
  async function* sendPieces(body: AsyncGenerator<Buffer>, t: BodyTry): AsyncGenerator<Buffer> {
    for await (const piece of body) {
      if (t.dead) return;
      t.pos += piece.length;
      sentTo = t.pos;
      flow.sent(piece.length);
      room.fire();
      const pieceEnd = t.pos;
      yield piece;
      // Asked for more after a piece this large: the socket wrote it all (RECYCLE_MIN_BYTES).
      if (piece.length >= RECYCLE_MIN_BYTES) retention.markDrained(t, pieceEnd);
    }
  }

  /**
   * Most bytes of a streamed call: this upload's fair share of the spool (all uploads alive share it)
   * plus its memory share, at least one block. A streamed call holds all its bytes until it is
   * acknowledged; the first streams of a storm took what they could and left the others a few
   * hundred KiB each (21 calls per 16 MiB STOR in the 2,000 storm).
   */
  function streamLimit(): number {
    const alive = Math.max(1, Atomics.load(ctx.words, G.UPLOADS_ALIVE));
    const fair = Math.floor((spoolCap > 0 ? spoolLimit : 0) / alive) + Math.max(0, Atomics.load(ctx.words, G.UPLOAD_MEMORY_BYTES));
    return Math.min(MAX_CALL_BYTES, Math.max(BLOCK_BYTES, fair - (fair % BLOCK_BYTES)));
  }

  /** Bytes of a full-size call: half of what retention holds (the other half fills meanwhile). */
  function callTarget(): number {
    const half = Math.floor(retention.capacity() / 2);
    // Whole 4 MiB blocks when possible: each call then carries its own content_hash for free.
    return Math.max(1, Math.min(MAX_CALL_BYTES, half >= BLOCK_BYTES ? half - (half % BLOCK_BYTES) : half));
  }

  /** The content_hash of the call [from, to) when it is made of whole hashed blocks (or ends the file). */
  function callHash(from: number, to: number, close: boolean): string | undefined {
    if (from % BLOCK_BYTES !== 0) return undefined;
    if (to % BLOCK_BYTES === 0) return hasher.rangeDigest(from / BLOCK_BYTES, to / BLOCK_BYTES, false) ?? undefined;
    if (close && to === hasher.byteLength) return hasher.rangeDigest(from / BLOCK_BYTES, Math.floor(to / BLOCK_BYTES), true) ?? undefined;
    return undefined;
  }

  /**
   * Sends [from, to) as the session's next piece (start when there is none yet), retrying from
   * retention. With `stream`, the first try is a call of unknown length whose body is stream(to,
   * try) (chunked, close=false, no content_hash); `to` then becomes where that body ended, and a retry
   * sends [at, to) as usual.
   */
  async function call(from: number, to: number, close: boolean, afterAbort: boolean, stream?: (limit: number, t: BodyTry) => AsyncGenerator<Buffer>): Promise<CallResult> {
    const gone = (): boolean => !afterAbort && ring.producerAborted();
    let at = from;
    let failedAttempts = 0;
    let throttles = 0;
    let authRefreshes = 0;
    let tried = false;
    for (;;) {
      if (gone()) return { ok: false, code: codeForRing(ring.producerError()), message: 'upload stopped by its writer', aborted: true };
      if (!(await ctx.pacer.admit(slot, gone))) {
        return { ok: false, code: codeForRing(ring.producerError()), message: 'upload stopped by its writer', aborted: true };
      }
      let failure: Failure | null = null;
      const tokenSeq = readToken(task.account.tokenCell).seq;
      const streamNow = stream;
      const streaming = streamNow !== undefined;
      const hash = at === from && !streaming ? callHash(from, to, close) : undefined;
      const withHash = hash ? { content_hash: hash } : {};
      const body: BodyTry = { pos: at, dead: false };
      // A body of known length whose answer came early was left to run (see below); its answer is
      // read now, so it takes no more pieces: none of its views into memory that is spilled, freed
      // and reused from here on goes out on its socket.
      if (lastTry && !lastTry.dead) {
        lastTry.dead = true;
        changed.fire();
      }
      lastTry = body;
      retention.beginTry(body, at);
      let threw = false;
      try {
        let res;
        try {
          res = await contentRequest({
            dispatcher: ctx.agent,
            account: task.account,
            route: sessionId ? 'files/upload_session/append_v2' : 'files/upload_session/start',
            arg: sessionId ? { cursor: { session_id: sessionId, offset: at }, close, ...withHash } : { close, ...withHash },
            body: streamNow ? streamNow(to, body) : counted(retention.body(at, to), body),
            ...(streaming ? {} : { bodyBytes: to - at }),
          });
        } catch (err) {
          threw = true;
          ctx.pacer.report(slot, { kind: 'failed' });
          throw err;
        } finally {
          // The try is over (its request failed, or a streamed call has its answer, which may come
          // before the box read the body): a body left parked wakes, sees that and ends, moving
          // nothing more. A body of known length whose answer came early is left to end: cut
          // short, the request would fail and lose the answer (a 429's Retry-After).
          if (threw || streaming) {
            body.dead = true;
            changed.fire();
          }
          if (streaming && body.pos > at) {
            // What the stream sent is retained: from here on the call is [at, body.pos).
            to = body.pos;
            stream = undefined;
          }
        }
        tried = true;
        if (res.statusCode === 200) {
          ctx.pacer.report(slot, { kind: 'ok' });
          const text = await res.body.text();
          if (!sessionId) {
            const id = (JSON.parse(text) as { session_id?: unknown }).session_id;
            if (typeof id !== 'string' || id === '') throw new Error('upload_session/start returned no session_id');
            sessionId = id;
          }
          // A stream that sent nothing (still set) moved the session nowhere.
          return { ok: true, to: stream === undefined ? to : at };
        }
        failure = await classifyResponse(res);
        await ctx.pacer.settle(slot, callOutcome(res.statusCode, failure));
      } catch (err) {
        tried = true;
        failure = classifyThrown(err);
      }
      if (failure.kind === 'offset') {
        // The session holds correct_offset bytes: an earlier try landed (fully or partly).
        if (failure.correctOffset === to && stream === undefined) return { ok: true, to }; // the close flag travelled with those bytes
        if (failure.correctOffset >= from && failure.correctOffset < to) {
          at = failure.correctOffset;
          ctx.pacer.countRetry(slot);
          continue;
        }
        return { ok: false, code: 'DROPFTP_ERR_UPSTREAM', message: `session at ${failure.correctOffset}, expected ${from}..${to}`, aborted: false };
      }
      if (failure.kind === 'closed') {
        // A closing append that landed before its reply was lost (rclone and the JS uploader agree).
        if (close && tried) return { ok: true, to };
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
      ctx.pacer.countRetry(slot);
      if (failure.throttle) {
        // too_many_requests: the pacer holds the retry until the account's window is over;
        // write lock: settle() already waited its retry_after. A flush after an abort gives up.
        if (afterAbort || ++throttles > MAX_THROTTLES) return { ok: false, code: 'DROPFTP_ERR_RATE_LIMITED', message: `still throttled after ${MAX_THROTTLES} tries`, aborted: false };
        continue;
      }
      if (++failedAttempts > (afterAbort ? 2 : MAX_FAILED_ATTEMPTS)) {
        return { ok: false, code: 'DROPFTP_ERR_UPSTREAM', message: `${failedAttempts} failed attempts, last: ${failure.reason}`, aborted: false };
      }
      // A reset or 5xx: the session may or may not hold the piece; sending it again at the offset
      // we believe in either lands or gets incorrect_offset with the offset to go on from.
      await sleep(backoffMs(failedAttempts));
    }
  }
}
