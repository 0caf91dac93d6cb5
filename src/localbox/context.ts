// The per-request context handed to route handlers: parsed arguments, the account, fault decisions,
// and helpers that send JSON, stream download bodies and read upload bodies (with injected resets
// and corruption applied on the wire). Runs in the local box child. Invariant: a handler sends at
// most one reply; streaming honours socket backpressure and never buffers more than one chunk.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Args } from './args.ts';
import type { CallRecord } from './call-stats.ts';
import type { FaultDecision } from './faults.ts';
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

/** The request body as chunks; an injected reset destroys the socket after `resetAfterBytes`. */
export async function* requestBody(ctx: Ctx): AsyncGenerator<Buffer> {
  const limit = ctx.fault.resetAfterBytes;
  let seen = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    if (limit !== null && seen + chunk.length >= limit) {
      if (limit > seen) {
        ctx.call.received(limit - seen);
        yield chunk.subarray(0, limit - seen);
      }
      ctx.req.socket.destroy();
      throw new Error('injected reset');
    }
    seen += chunk.length;
    ctx.call.received(chunk.length);
    yield chunk;
  }
  if (limit !== null && seen >= limit) {
    ctx.req.socket.destroy();
    throw new Error('injected reset');
  }
}

/**
 * Writes `body` (chunks totalling `byteLength`) after the head already set on ctx.res, applying an
 * injected corruption or reset. Resolves when the reply is finished or the client went away.
 */
export async function streamBody(ctx: Ctx, body: AsyncIterable<Buffer>, byteLength: number, randomInt: (n: number) => number): Promise<void> {
  const { res, fault } = ctx;
  let corruptAt = fault.corruptAt === 'random' ? (byteLength > 0 ? randomInt(byteLength) : null) : fault.corruptAt;
  const resetAt = fault.resetAfterBytes;
  let sent = 0;
  let closed = false;
  const onClose = (): void => {
    closed = true;
  };
  res.on('close', onClose);
  try {
    for await (let chunk of body) {
      if (closed || res.destroyed) return;
      if (corruptAt !== null && corruptAt >= sent && corruptAt < sent + chunk.length) {
        chunk = Buffer.from(chunk); // never flip a byte in a shared buffer
        chunk[corruptAt - sent] = chunk[corruptAt - sent]! ^ 0xff;
        corruptAt = null;
      }
      if (resetAt !== null && sent + chunk.length >= resetAt) {
        const head = chunk.subarray(0, resetAt - sent);
        if (head.length) res.write(head);
        ctx.call.served(head.length);
        // let the bytes reach the socket, then cut it
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      }
      sent += chunk.length;
      ctx.call.served(chunk.length);
      if (!res.write(chunk)) {
        await drainOrClose(res);
      }
    }
    if (resetAt !== null && sent >= resetAt) {
      res.socket?.destroy();
      return;
    }
    res.end();
  } finally {
    res.off('close', onClose);
  }
}

function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
