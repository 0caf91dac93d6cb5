// Test helpers for the Dropbox request layer: a tiny real HTTP server on 127.0.0.1 that answers each
// request with the next scripted reply (status, headers, raw body — malformed ones included, which the
// local box never sends), recording what it was sent; and a pacer that records what it was told.
// Test main thread.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CallOutcome, CallPacer } from '../../src/dropbox/request.ts';

export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
  /** Destroy the socket instead of answering (a reset). */
  reset?: boolean;
}

export interface Seen {
  url: string;
  authorization: string | null;
  body: string;
}

export interface Scripted {
  url: string;
  seen: Seen[];
  /** Replies for the next requests, in order; when empty, `fallback` answers. */
  script(...replies: Reply[]): void;
  fallback: Reply;
  close(): Promise<void>;
}

export async function scriptedServer(): Promise<Scripted> {
  const queue: Reply[] = [];
  const seen: Seen[] = [];
  const state: { fallback: Reply } = { fallback: { status: 200, body: { ok: true } } };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ url: req.url ?? '', authorization: req.headers.authorization ?? null, body: Buffer.concat(chunks).toString('utf8') });
      const reply = queue.shift() ?? state.fallback;
      if (reply.reset) {
        req.socket.destroy();
        return;
      }
      const body = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body ?? null);
      res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    script: (...replies) => {
      queue.length = 0;
      seen.length = 0;
      queue.push(...replies);
    },
    get fallback() {
      return state.fallback;
    },
    set fallback(reply: Reply) {
      state.fallback = reply;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A pacer that admits at once (or refuses once `refuse` is set) and records every report. */
export function recordingPacer(): CallPacer & { admits: number; reports: CallOutcome[]; refuse: boolean } {
  const pacer = {
    admits: 0,
    reports: [] as CallOutcome[],
    refuse: false,
    async admit(cancelled?: () => boolean): Promise<boolean> {
      if (pacer.refuse || cancelled?.()) return false;
      pacer.admits++;
      return true;
    },
    report(outcome: CallOutcome): void {
      pacer.reports.push(outcome);
    },
  };
  return pacer;
}

export const TOO_MANY = (tag: 'too_many_requests' | 'too_many_write_operations', retryAfter?: unknown) => ({
  error_summary: `${tag}/..`,
  error: { reason: { '.tag': tag }, ...(retryAfter === undefined ? {} : { retry_after: retryAfter }) },
});
