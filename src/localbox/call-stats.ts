// Call counters of the local box, read by benchmarks through GET /admin/calls: calls and reply
// statuses by route, limit refusals by kind and account, body bytes served and received.
// Runs in the local box child. Invariants: each API call (admin routes excepted) is recorded exactly
// once, when its reply ends or its connection closes, refused calls included; a call that ended
// without a status line is counted under the status "reset"; body bytes count as they move;
// reset() zeroes everything.

import type { ServerResponse } from 'node:http';

export type LimitKind = 'too_many_requests' | 'too_many_write_operations';

/** What one request accumulates while it runs; recorded once at its end. */
export class CallRecord {
  route: string | null = null; // null: no API route (unknown path, admin)
  account: string | null = null; // set once authenticated

  constructor(private readonly stats: CallStats) {}

  /** Body bytes sent (download) or read (upload): counted at once, so long transfers show while they run. */
  served(n: number): void {
    this.stats.moved(n, 0);
  }

  received(n: number): void {
    this.stats.moved(0, n);
  }
  tooManyRequests = 0;
  tooManyWriteOperations = 0; // a 429 reply, or entries of finish_batch_v2 refused for the lock
  private done = false;

  noteLimit(kind: LimitKind, n = 1): void {
    if (kind === 'too_many_requests') this.tooManyRequests += n;
    else this.tooManyWriteOperations += n;
  }

  /** True the first time only. */
  finish(): boolean {
    if (this.done) return false;
    this.done = true;
    return true;
  }
}

interface RouteCounts {
  calls: number;
  status: Record<string, number>;
}

interface AccountCounts {
  calls: number;
  tooManyRequests: number;
  tooManyWriteOperations: number;
}

export interface CallsSnapshot {
  routes: Record<string, RouteCounts>;
  limits: { tooManyRequests: number; tooManyWriteOperations: number; byAccount: Record<string, AccountCounts> };
  bytes: { served: number; received: number };
}

export class CallStats {
  private routes = new Map<string, RouteCounts>();
  private accounts = new Map<string, AccountCounts>();
  private tooManyRequests = 0;
  private tooManyWriteOperations = 0;
  private servedBytes = 0;
  private receivedBytes = 0;
  /** Refusals since the last log line, by account: [too_many_requests, too_many_write_operations]. */
  private unlogged = new Map<string, [number, number]>();

  moved(servedBytes: number, receivedBytes: number): void {
    this.servedBytes += servedBytes;
    this.receivedBytes += receivedBytes;
  }

  /** Records `call` once, with the status `res` ended with. */
  record(call: CallRecord, res: ServerResponse): void {
    if (!call.finish() || call.route === null) return;
    let r = this.routes.get(call.route);
    if (!r) this.routes.set(call.route, (r = { calls: 0, status: {} }));
    r.calls++;
    const status = res.headersSent ? String(res.statusCode) : 'reset';
    r.status[status] = (r.status[status] ?? 0) + 1;
    this.tooManyRequests += call.tooManyRequests;
    this.tooManyWriteOperations += call.tooManyWriteOperations;
    if (call.account !== null) {
      let a = this.accounts.get(call.account);
      if (!a) this.accounts.set(call.account, (a = { calls: 0, tooManyRequests: 0, tooManyWriteOperations: 0 }));
      a.calls++;
      a.tooManyRequests += call.tooManyRequests;
      a.tooManyWriteOperations += call.tooManyWriteOperations;
    }
    if (call.tooManyRequests + call.tooManyWriteOperations > 0) {
      const key = call.account ?? '(no account)';
      const u = this.unlogged.get(key) ?? [0, 0];
      u[0] += call.tooManyRequests;
      u[1] += call.tooManyWriteOperations;
      this.unlogged.set(key, u);
    }
  }

  /** One log line for the refusals since the previous call (null when there were none). */
  takeLogLine(): string | null {
    if (this.unlogged.size === 0) return null;
    const parts = [...this.unlogged].map(([account, [tmr, twl]]) =>
      [tmr ? `too_many_requests=${tmr}` : '', twl ? `too_many_write_operations=${twl}` : ''].filter(Boolean).join(' ') + ` (${account})`,
    );
    this.unlogged.clear();
    return `429s in the last second: ${parts.join(', ')}`;
  }

  snapshot(): CallsSnapshot {
    const routes: Record<string, RouteCounts> = {};
    for (const [k, v] of this.routes) routes[k] = { calls: v.calls, status: { ...v.status } };
    const byAccount: Record<string, AccountCounts> = {};
    for (const [k, v] of this.accounts) byAccount[k] = { ...v };
    return {
      routes,
      limits: { tooManyRequests: this.tooManyRequests, tooManyWriteOperations: this.tooManyWriteOperations, byAccount },
      bytes: { served: this.servedBytes, received: this.receivedBytes },
    };
  }

  reset(): void {
    this.routes.clear();
    this.accounts.clear();
    this.tooManyRequests = 0;
    this.tooManyWriteOperations = 0;
    this.servedBytes = 0;
    this.receivedBytes = 0;
    this.unlogged.clear();
  }
}
