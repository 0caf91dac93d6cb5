// The status page's data: FTP sessions (the server's session map + session-watch.ts) and the
// transfer engine's stats() turned into the /status.json shape documented in the README. Main
// thread. Invariants: the ONE place that reads engine stats for the page, and it tolerates any field
// missing or of another type (null on the page, never a throw), so a change of the engine's stats
// is absorbed here; rates are computed from samples at least a second apart; no password, token or
// file content can reach the output (commands come pre-masked, errors carry client texts only).

import type { RecentActivity, Ring } from './recent.ts';
import { isoTime as iso, SessionRows } from './session-rows.ts';
import type { SessionLike, SessionWatch } from './session-watch.ts';

export const STATUS_VERSION = 1;
/** Lists are cut at this length (the totals still count everything). */
export const MAX_LISTED = 1000;
const RATE_WINDOW_MS = 1000;

export interface StatusSources {
  sessions: () => Iterable<SessionLike>;
  watch: SessionWatch;
  recent: RecentActivity;
  /** The engine's stats() (any shape; null when the engine is closed). */
  engine: () => unknown;
  startedAtMs: number;
  now?: () => number;
}

type Json = Record<string, unknown>;

function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}
function obj(value: unknown): Json | null {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : null;
}
const round1 = (n: number): number => Math.round(n * 10) / 10;

/**
 * Counters sampled at least RATE_WINDOW_MS apart: `figure` turns how much each grew over the last
 * window, and the window's length in ms, into a number that stands until the next window ends (null
 * until the second sample). A counter that went back (a restart) starts the window over.
 */
class OverWindow {
  #atMs = 0;
  #values: number[] = [];
  #figure: number | null = null;
  constructor(private readonly figure: (growth: number[], ms: number) => number | null) {}
  update(values: (number | null)[], nowMs: number): number | null {
    if (values.some((v) => v === null)) return null;
    const now = values as number[];
    if (this.#atMs === 0 || now.some((v, i) => v < this.#values[i]!)) {
      [this.#atMs, this.#values] = [nowMs, now];
      return this.#figure;
    }
    if (nowMs - this.#atMs >= RATE_WINDOW_MS) {
      this.#figure = this.figure(
        now.map((v, i) => v - this.#values[i]!),
        nowMs - this.#atMs,
      );
      [this.#atMs, this.#values] = [nowMs, now];
    }
    return this.#figure;
  }
}

/** A counter's rate per second. */
const rateOf = (): OverWindow => new OverWindow(([grown], ms) => round1((grown! * 1000) / ms));
/** The mean wait of the calls an account started (counters: calls started, ms they waited), ms; null with no start in the window. */
const meanWaitOf = (): OverWindow => new OverWindow(([calls, waited]) => (calls! > 0 ? Math.round(waited! / calls!) : null));

/** A ring of recent items as a JSON list, newest first, `atMs` shown as `at`; re-serialised only after a push. */
function ringJson<T extends { atMs: number }>(ring: Ring<T>, memo: { pushed: number; json: string }): string {
  if (memo.pushed !== ring.pushed) [memo.json, memo.pushed] = [JSON.stringify(ring.newestFirst().map((item) => ({ ...item, atMs: undefined, at: iso(item.atMs) }))), ring.pushed];
  return memo.json;
}

/** Sum of every count of the engine's `requests` (route → status → count). */
function sumRequests(requests: unknown): number | null {
  const byRoute = obj(requests);
  if (!byRoute) return null;
  let total = 0;
  for (const byStatus of Object.values(byRoute)) for (const count of Object.values(obj(byStatus) ?? {})) total += num(count) ?? 0;
  return total;
}

export class StatusModel {
  readonly #s: StatusSources;
  readonly #now: () => number;
  readonly #accountRates = new Map<string, OverWindow>();
  readonly #accountWaits = new Map<string, OverWindow>();
  readonly #engineRate = rateOf();
  readonly #rows = new SessionRows();
  readonly #recentTransfers = { pushed: -1, json: '[]' };
  readonly #recentErrors = { pushed: -1, json: '[]' };

  constructor(sources: StatusSources) {
    this.#s = sources;
    this.#now = sources.now ?? Date.now;
  }

  /** The status as an object (tests, tools); the routes serve body(). */
  snapshot(): Json {
    return JSON.parse(this.body().join('')) as Json; // a Buffer piece joins as its UTF-8 text
  }

  /**
   * The status as JSON, in pieces to write one after the other, `extra` fields appended. The sessions
   * list (a thousand rows) is bytes rebuilt only when a session came, went or changed, and then only
   * its changed rows (session-rows.ts); the transfers, whose bytes move, are built anew from their
   * fixed fields serialised once; the recent lists only after a push.
   */
  body(extra: Json = {}): (string | Buffer)[] {
    const nowMs = this.#now();
    const segment = this.#rows.build(() => this.#s.sessions(), this.#s.watch, MAX_LISTED);
    const transfers: string[] = [];
    for (const entry of this.#s.watch.moving.values()) {
      const session = entry.session;
      const file = entry.file;
      const live = session?.transfer;
      if (!session || !file || !live || transfers.length >= MAX_LISTED) continue;
      const bytes = live.bytes;
      if (bytes !== file.lastBytes) [file.lastBytes, file.lastProgressAtMs] = [bytes, nowMs];
      if (nowMs - file.sampleAtMs >= RATE_WINDOW_MS) {
        file.rateBytesPerSec = Math.round(((bytes - file.sampleBytes) * 1000) / (nowMs - file.sampleAtMs));
        [file.sampleBytes, file.sampleAtMs] = [bytes, nowMs];
      } else if (file.sampleBytes === 0 && nowMs > file.startedAtMs) {
        file.rateBytesPerSec = Math.round((bytes * 1000) / (nowMs - file.startedAtMs));
      }
      // The fields that never change are serialised once per transfer; the moving ones every time.
      file.fixedJson ??= JSON.stringify({ session: session.id, user: session.authenticated ? (session.username ?? null) : null, client: session.controlPeerAddress, path: file.path, direction: file.direction, sizeBytes: file.sizeBytes, startedAt: file.startedAt }).slice(1);
      const percent = file.sizeBytes ? round1(Math.min(100, (bytes * 100) / file.sizeBytes)) : null;
      transfers.push(`{"bytes":${bytes},"percent":${percent},"rateBytesPerSec":${file.rateBytesPerSec},"secondsWithoutProgress":${round1((nowMs - file.lastProgressAtMs) / 1000)},${file.fixedJson}`);
    }
    const total = segment.total;
    const loggedIn = segment.loggedIn;
    const { accounts, engine } = this.#engine(nowMs);
    const recent = this.#s.recent;
    const head = JSON.stringify({ version: STATUS_VERSION, generatedAt: iso(nowMs), uptimeSeconds: Math.round((nowMs - this.#s.startedAtMs) / 1000), totals: { sessions: total, loggedIn, transfers: transfers.length } });
    const more = JSON.stringify(extra);
    const tail = `"recentTransfers":${ringJson(recent.transfers, this.#recentTransfers)},"accounts":${JSON.stringify(accounts)},"engine":${JSON.stringify(engine)},"errors":${ringJson(recent.errors, this.#recentErrors)}${more === '{}' ? '' : `,${more.slice(1, -1)}`}}`;
    // The transfers' text stays a piece of its own: joined flat once, never copied into a bigger string.
    return [`${head.slice(0, -1)},"sessions":[`, segment.bytes, '],"transfers":[', transfers.join(','), `],${tail}`];
  }

  /** The engine's figures, every field optional (see the file header). */
  #engine(nowMs: number): { accounts: Json[]; engine: Json } {
    let stats: Json | null;
    try {
      stats = obj(this.#s.engine());
    } catch {
      stats = null; // a closed engine: the page says so
    }
    const batches = this.#s.recent.commitBatches.newestFirst();
    if (!stats) return { accounts: [], engine: { available: false, recentBatchSizes: batches } };
    const accounts = Object.entries(obj(stats.accounts) ?? {}).map(([name, raw]) => {
      const a = obj(raw) ?? {};
      const calls = num(a.callsStarted) ?? num(a.calls);
      let rate = this.#accountRates.get(name);
      if (!rate) this.#accountRates.set(name, (rate = rateOf()));
      let wait = this.#accountWaits.get(name);
      if (!wait) this.#accountWaits.set(name, (wait = meanWaitOf()));
      // The paced engine: retryAfterUntilMs (epoch ms, null when none in force); before it, pausedForMs.
      const untilMs = num(a.retryAfterUntilMs);
      const retryAfterMs = num(a.pausedForMs) ?? num(a.retryAfterMs) ?? (untilMs !== null ? Math.max(0, untilMs - nowMs) : 'retryAfterUntilMs' in a ? 0 : null);
      // A pacer reports the rate it allows (callsPerSecond, also in `limit`); there is no concurrency cap then.
      const paced = num(a.callsPerSecond);
      return {
        name,
        callsStarted: calls,
        callsPerSec: num(a.callRate) ?? rate.update([calls], nowMs),
        pacedCallsPerSec: paced === null ? null : round1(paced),
        startWaitMs: wait.update([calls, num(a.waitedMs)], nowMs),
        inFlight: num(a.inFlight),
        waiting: num(a.waiting),
        limit: paced === null ? num(a.limit) : null,
        rateLimited: num(a.throttles) ?? num(a.rateLimited),
        retries: num(a.retries),
        writeLockRetries: num(a.writeLockRetries),
        retryAfterSeconds: retryAfterMs === null ? null : round1(retryAfterMs / 1000),
      };
    });
    const memory = obj(stats.memory) ?? {};
    const ring = num(memory.ringBytesInUse);
    const chunk = num(memory.chunkBytesInUse);
    const spool = num(memory.spoolBytes) ?? num(obj(stats.spool)?.bytesInUse) ?? num(stats.spoolBytes);
    const inUse = num(memory.inUseBytes) ?? (ring === null && chunk === null ? null : (ring ?? 0) + (chunk ?? 0));
    const commits = obj(stats.commits) ?? {};
    const calls = num(commits.calls);
    const committed = num(commits.committed);
    const answers = num(stats.callsStarted) ?? sumRequests(stats.requests);
    return {
      accounts,
      engine: {
        available: true,
        threads: num(stats.threads),
        workerUtilization: num(stats.workerUtilization),
        workerHeaps: (Array.isArray(stats.workerHeaps) ? stats.workerHeaps : []).map((h) => ({ thread: num(obj(h)?.threadKey), heapUsedBytes: num(obj(h)?.heapUsedBytes) })),
        activeDownloads: num(stats.activeDownloads),
        activeUploads: num(stats.activeUploads),
        memory: { budgetBytes: num(memory.budgetBytes), inUseBytes: inUse, ringBytes: ring, chunkBytes: chunk, spoolBytes: spool },
        callsPerSec: this.#engineRate.update([answers], nowMs),
        rateLimited: num(stats.throttles),
        retries: num(stats.retries),
        workerCrashes: num(stats.workerCrashes),
        commits: { calls, committed, backlog: num(commits.backlog), meanBatchSize: calls && committed !== null ? round1(committed / calls) : null },
        recentBatchSizes: batches,
      },
    };
  }
}
