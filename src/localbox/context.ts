// The per-request context handed to route handlers: parsed arguments, the account, fault decisions,
// and helpers that send JSON, stream download bodies and read upload bodies (with injected resets
// and corruption applied on the wire, both ways). Runs in the local box child. Invariants: a
// handler sends at most one reply; a download holds at most its reader's few lent chunks, an upload
// body pauses while its sink waits.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Args } from './args.ts';
import type { CallRecord } from './call-stats.ts';
import type { FaultDecision } from './faults.ts';
import type { BlockReader } from './store/block-reader.ts';
import type { AccountRow } from './store/accounts.ts';

export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  route: string;
  args: Args;
  /** Set on user-auth routes. */
  account: AccountRow | null;
  accessToken: string | null;
  fault: FaultDecision;
  /** This call's counters (bytes, limit refusals), recorded when the reply ends. */
  call: CallRecord;
}

export function sendJson(res: ServerResponse, value: unknown, status = 200): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * What a body's consumer does with a chunk: returns a promise when the next must wait for it.
 * `disposable`: the chunk is the whole of a buffer no one else holds (the parser's own), so the sink
 * may free its memory once done with it (src/util/release-memory.ts).
 */
export type ChunkSink = (chunk: Buffer, disposable: boolean) => Promise<void> | undefined | void;

/** A request body, consumed once: calls the sink per chunk and resolves after the last one. */
export type Body = (sink: ChunkSink) => Promise<void>;

/**
 * The request body, read with 'data' events (the socket is paused while the sink's promise is
 * pending). An injected reset destroys the socket after `resetAfterBytes`; a sink that throws, or a
 * client that goes away, fails it (the rest of the body is then discarded as it arrives).
 */
export function requestBody(ctx: Ctx): Body {
  return (sink) => consumeBody(ctx, sink);
}

function consumeBody(ctx: Ctx, sink: ChunkSink): Promise<void> {
  const { req } = ctx;
  const limit = ctx.fault.resetAfterBytes;
  let corruptAt = ctx.fault.corruptUploadAt;
  let seen = 0;
  /** An injected corruption: one byte of the body flipped before anything reads or hashes it. */
  const damage = (chunk: Buffer): void => {
    if (corruptAt === null || chunk.length === 0) return;
    // 'random' left for a body of unknown length: the middle of its first chunk.
    const at = corruptAt === 'random' ? seen + (chunk.length >>> 1) : corruptAt;
    if (at < seen || at >= seen + chunk.length) return;
    chunk[at - seen] = chunk[at - seen]! ^ 0xff;
    corruptAt = null;
  };
  return new Promise<void>((resolve, reject) => {
    if (req.readableEnded) {
      resolve();
      return;
    }
    if (req.destroyed) {
      reject(new Error('aborted'));
      return;
    }
    let settled = false;
    let waiting = false;
    let ended = false;
    const finish = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', finish);
      req.off('close', onClose);
      if (err === undefined) {
        resolve();
        return;
      }
      // the rest of the body is read and dropped, so that the error reply can reach the client
      req.resume();
      reject(err);
    };
    const deliver = (chunk: Buffer, disposable: boolean): void => {
      let wait: Promise<void> | undefined | void;
      try {
        wait = sink(chunk, disposable);
      } catch (err) {
        finish(err);
        return;
      }
      if (!wait) return;
      waiting = true;
      req.pause();
      wait.then(
        () => {
          waiting = false;
          if (settled) return;
          if (ended) finish();
          else req.resume();
        },
        (err: unknown) => finish(err),
      );
    };
    const injectedReset = (): void => {
      req.socket.destroy();
      finish(new Error('injected reset'));
    };
    const onData = (chunk: Buffer): void => {
      if (settled) return;
      damage(chunk);
      if (limit !== null && seen + chunk.length >= limit) {
        if (limit > seen) {
          ctx.call.received(limit - seen);
          deliver(chunk.subarray(0, limit - seen), false);
        }
        injectedReset();
        return;
      }
      seen += chunk.length;
      ctx.call.received(chunk.length);
      deliver(chunk, true);
    };
    const onEnd = (): void => {
      ended = true;
      if (limit !== null && seen >= limit) injectedReset();
      else if (!waiting) finish();
    };
    const onClose = (): void => {
      if (!ended) finish(new Error('aborted'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', finish);
    req.on('close', onClose);
  });
}

/**
 * A download gives the event loop a turn after this many bytes sent without one. Reads served
 * inline and writes the socket takes at once settle in microtasks: against a client that reads as
 * fast as the box writes (loopback, a lean client), one download otherwise ran to its end before any
 * other connection was served (storm of 200 x 10 MiB straight over HTTP: one download done in 88 ms
 * while the other 99 took 1.9 s; Jain 0.28 within RETR).
 */
const YIELD_EVERY_BYTES = 1024 * 1024;

/**
 * Writes the bytes of `reader` (totalling `byteLength`, then `extraBytes` of filler for an injected
 * long_body) after the head already set on ctx.res, applying an injected corruption or reset. Each
 * lent buffer goes back to the reader when the socket has taken its bytes, so at most the reader's
 * lent chunks are in memory; every YIELD_EVERY_BYTES the loop lets other connections have a turn.
 * Resolves when the reply is finished or the client went away.
 */
export async function streamBody(ctx: Ctx, reader: BlockReader, byteLength: number, randomInt: (n: number) => number, extraBytes = 0): Promise<void> {
  const { res, fault } = ctx;
  let corruptAt = fault.corruptAt === 'random' ? (byteLength > 0 ? randomInt(byteLength) : null) : fault.corruptAt;
  const resetAt = fault.resetAfterBytes;
  let sent = 0;
  let turnAt = YIELD_EVERY_BYTES;
  const onClose = (): void => reader.cancel();
  res.on('close', onClose);
  try {
    for (;;) {
      const lent = await reader.next();
      if (lent === null) break;
      if (res.destroyed) {
        reader.release(lent);
        return;
      }
      let chunk = lent;
      if (corruptAt !== null && corruptAt >= sent && corruptAt < sent + chunk.length) {
        chunk = Buffer.from(lent); // never flip a byte in a pooled buffer
        chunk[corruptAt - sent] = chunk[corruptAt - sent]! ^ 0xff;
        corruptAt = null;
        reader.release(lent);
      }
      if (resetAt !== null && sent + chunk.length >= resetAt) {
        const head = chunk.subarray(0, resetAt - sent);
        if (head.length) res.write(head); // a lent buffer not given back: left to the garbage collector
        ctx.call.served(head.length);
        // let the bytes reach the socket, then cut it
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      }
      sent += chunk.length;
      ctx.call.served(chunk.length);
      if (chunk === lent) res.write(chunk, () => reader.release(lent));
      else res.write(chunk);
      if (sent >= turnAt) {
        turnAt = sent + YIELD_EVERY_BYTES;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    if (res.destroyed) return;
    if (resetAt !== null && sent >= resetAt) {
      res.socket?.destroy();
      return;
    }
    if (extraBytes > 0) {
      ctx.call.served(extraBytes);
      res.write(Buffer.alloc(extraBytes, 0x5a)); // an injected long_body: bytes past the file's end
    }
    res.end();
  } finally {
    res.off('close', onClose);
    await reader.close();
  }
}
