// What each simulated client does, per scenario (idle, storm, big, churn), for the sessions of one
// load generator process. Runs in a load generator child process. Invariants: logins are throttled
// to `loginConcurrency` in flight; every transfer gets a meter whose record ends up in the result,
// failed or not; nothing is left open once a scenario's promise settles.

import { FtpControl } from './ftp-client.ts';
import { ftpTransfer, type TransferPlan } from './ftp-transfer.ts';
import { httpTransfer } from './http-transfer.ts';
import { TransferMeter, nowMs, type TransferOp } from './meter.ts';
import type { Counters, WorkerConfig, WorkerResult } from './protocol.ts';

/** Seeded, so churn runs repeat (src/util/prng.ts). */
import { mulberry32 as prng } from '../../src/util/prng.ts';
export { prng };

/** Session `id`'s loopback source address when sessions are spread over `count` of them. */
export function sourceAddress(id: number, count: number): string | undefined {
  if (count <= 1) return undefined;
  const k = (id % count) + 1;
  return `127.1.${(k >> 8) & 255}.${k & 255}`;
}

export class ScenarioRunner {
  readonly counters: Counters = { loggedIn: 0, loginFailed: 0, active: 0, done: 0, failed: 0, bytes: 0 };
  readonly result: WorkerResult = {
    logins: { ok: 0, failed: 0, firstStartMs: null, lastDoneMs: null, latenciesMs: [] },
    transfers: [],
    idle: null,
    churn: null,
    errors: {},
  };
  private readonly controls = new Map<number, FtpControl>();
  private loginSlots: number;
  private readonly loginQueue: Array<() => void> = [];
  private stopped = false;
  private readonly sleepers = new Set<{ timer: NodeJS.Timeout; wake(): void }>();
  private readonly random: () => number;

  constructor(readonly config: WorkerConfig) {
    this.loginSlots = Math.max(1, config.loginConcurrency);
    this.random = prng(config.seed + config.firstId * 7919);
  }

  private error(err: unknown): void {
    const message = ((err as Error)?.message ?? String(err)).replace(/\d{3,}/g, '#').slice(0, 120);
    this.result.errors[message] = (this.result.errors[message] ?? 0) + 1;
  }

  private async slot(): Promise<void> {
    if (this.loginSlots > 0) {
      this.loginSlots--;
      return;
    }
    await new Promise<void>((resolve) => this.loginQueue.push(resolve));
  }

  private release(): void {
    const next = this.loginQueue.shift();
    if (next) next();
    else this.loginSlots++;
  }

  /** Connects and logs session `id` in; null when it failed (counted). */
  async login(id: number): Promise<FtpControl | null> {
    const t = this.config.target;
    if (t.kind !== 'ftp') return null;
    await this.slot();
    const started = nowMs();
    const logins = this.result.logins;
    logins.firstStartMs ??= started;
    try {
      const ctl = await FtpControl.connect(t.host, t.port, this.config.replyTimeoutMs, sourceAddress(id, this.config.sourceAddresses));
      ctl.socket.on('error', () => {});
      try {
        await ctl.login(t.user, t.password);
      } catch (err) {
        ctl.socket.destroy();
        throw err;
      }
      const done = nowMs();
      logins.ok++;
      logins.lastDoneMs = Math.max(logins.lastDoneMs ?? 0, done);
      if (logins.latenciesMs.length < 20_000) logins.latenciesMs.push(done - started);
      this.counters.loggedIn++;
      this.controls.set(id, ctl);
      return ctl;
    } catch (err) {
      logins.failed++;
      this.counters.loginFailed++;
      this.error(err);
      return null;
    } finally {
      this.release();
    }
  }

  /** Login phase of idle and storm: sessions [from, to) of this process's share (default all), throttled. */
  async loginAll(from = 0, to = this.config.count): Promise<void> {
    if (this.config.target.kind !== 'ftp') return;
    const ids = Array.from({ length: Math.max(0, to - from) }, (_, i) => this.config.firstId + from + i);
    await Promise.all(ids.map((id) => this.login(id)));
  }

  opOf(id: number): TransferOp {
    const op = this.config.op;
    return op === 'retr' ? 'RETR' : op === 'stor' ? 'STOR' : id % 2 === 0 ? 'RETR' : 'STOR';
  }

  /** One metered transfer on an FTP session or over direct HTTP. */
  async transfer(id: number, ctl: FtpControl | null, plan: TransferPlan, epochMs: number): Promise<string> {
    const c = this.config;
    const meter = new TransferMeter(id, plan.op, plan.sizeBytes, epochMs, id < c.timelineSessions ? c.bucketMs : 0);
    this.counters.active++;
    let outcome = 'failed';
    let counted = 0;
    const flush = (): void => {
      this.counters.bytes += meter.record.bytes - counted;
      counted = meter.record.bytes;
    };
    // Watchdog: no byte for longer than any single wait may last means a wait without a timeout
    // hangs (a client or server defect); drop the session and count the transfer as failed.
    const limitMs = c.stallTimeoutMs + c.replyTimeoutMs + 5_000;
    let fire!: (err: Error) => void;
    const watchdog = new Promise<never>((_, reject) => (fire = reject));
    const tick = setInterval(() => {
      flush();
      if (nowMs() - (meter.record.lastByteMs ?? meter.record.startMs) > limitMs) {
        ctl?.drop();
        fire(new Error(`watchdog: no progress for ${limitMs} ms`));
      }
    }, 250);
    try {
      if (c.target.kind === 'http') {
        await Promise.race([httpTransfer(c.target, plan, meter), watchdog]);
        outcome = 'complete';
      } else {
        if (!ctl) throw new Error('not logged in');
        outcome = await Promise.race([ftpTransfer(ctl, plan, meter), watchdog]);
      }
      meter.finish(true);
      this.counters.done++;
    } catch (err) {
      meter.finish(false, (err as Error).message);
      this.counters.failed++;
      this.error(err);
    } finally {
      clearInterval(tick);
      flush();
      this.counters.active--;
      this.result.transfers.push(meter.record);
    }
    return outcome;
  }

  async storm(epochMs: number): Promise<void> {
    const c = this.config;
    const ids = Array.from({ length: c.count }, (_, i) => c.firstId + i);
    await Promise.all(
      ids.map(async (id) => {
        const ctl = this.controls.get(id) ?? null;
        if (c.target.kind === 'ftp' && !ctl) return;
        const op = this.opOf(id);
        const path = op === 'RETR' ? c.retrPath : `${c.storPrefix}${id}.bin`;
        await this.transfer(id, ctl, { op, path, sizeBytes: c.sizeBytes, sessionId: id, stallTimeoutMs: c.stallTimeoutMs }, epochMs);
        await ctl?.quit();
        this.controls.delete(id);
      }),
    );
  }

  /** One STOR of sizeBytes, then a RETR of the same file, on one session. */
  async big(epochMs: number): Promise<void> {
    const c = this.config;
    const id = c.firstId;
    const ctl = this.controls.get(id) ?? null;
    if (c.target.kind === 'ftp' && !ctl) return;
    const path = `${c.storPrefix}big.bin`;
    const plan = { path, sizeBytes: c.sizeBytes, sessionId: id, stallTimeoutMs: c.stallTimeoutMs };
    if ((await this.transfer(id, ctl, { ...plan, op: 'STOR' }, epochMs)) === 'complete') {
      await this.transfer(id, ctl, { ...plan, op: 'RETR' }, epochMs);
    }
    await ctl?.quit();
    this.controls.delete(id);
  }

  /** Sessions stay logged in and send a NOOP now and then until stop(). */
  async idle(): Promise<void> {
    const stats = { noopsOk: 0, noopsFailed: 0, disconnected: 0 };
    this.result.idle = stats;
    const c = this.config;
    await Promise.all(
      [...this.controls.entries()].map(async ([, ctl]) => {
        while (!this.stopped) {
          await this.pause(c.noopMs * (0.5 + this.random()));
          if (this.stopped) break;
          if (ctl.closed) {
            stats.disconnected++;
            return;
          }
          try {
            const r = await ctl.send('NOOP');
            if (r.code === 200) stats.noopsOk++;
            else stats.noopsFailed++;
          } catch (err) {
            stats.noopsFailed++;
            this.error(err);
          }
        }
      }),
    );
    await this.quitAll();
  }

  /** Each slot connects, does 1 to 3 random operations (complete, ABOR or dropped), leaves, repeats. */
  async churn(epochMs: number): Promise<void> {
    const c = this.config;
    const outcomes: Record<string, number> = {};
    const churn = { outcomes, sessions: 0 };
    this.result.churn = churn;
    const deadline = epochMs + c.durationMs;
    const count = (k: string): void => void (outcomes[k] = (outcomes[k] ?? 0) + 1);
    const ids = Array.from({ length: c.count }, (_, i) => c.firstId + i);
    await Promise.all(
      ids.map(async (id) => {
        while (!this.stopped && nowMs() < deadline) {
          const ctl = await this.login(id);
          churn.sessions++;
          if (!ctl) {
            await this.pause(200);
            continue;
          }
          const ops = 1 + Math.floor(this.random() * 3);
          let alive = true;
          for (let k = 0; k < ops && alive && nowMs() < deadline; k++) {
            const op: TransferOp = this.random() < 0.6 ? 'RETR' : 'STOR';
            const roll = this.random();
            const cut = roll < 0.6 ? undefined : roll < 0.85 ? ('abort' as const) : ('drop' as const);
            const plan: TransferPlan = {
              op,
              path: op === 'RETR' ? c.retrPath : `${c.storPrefix}${id}.bin`,
              sizeBytes: c.sizeBytes,
              sessionId: id,
              stallTimeoutMs: c.stallTimeoutMs,
              ...(cut ? { cut, cutAfterBytes: Math.floor(this.random() * c.sizeBytes) } : {}),
            };
            const outcome = await this.transfer(id, ctl, plan, epochMs);
            count(`${op} ${outcome}`);
            alive = outcome !== 'dropped' && outcome !== 'failed' && !ctl.closed;
          }
          if (alive) await ctl.quit();
          else ctl.socket.destroy();
          this.controls.delete(id);
        }
      }),
    );
  }

  /** Sleeps `ms`, or less when stop() comes first. */
  private pause(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const sleeper = {
        timer: setTimeout(() => sleeper.wake(), ms),
        wake: () => {
          clearTimeout(sleeper.timer);
          this.sleepers.delete(sleeper);
          resolve();
        },
      };
      this.sleepers.add(sleeper);
    });
  }

  stop(): void {
    this.stopped = true;
    for (const s of [...this.sleepers]) s.wake();
  }

  async quitAll(): Promise<void> {
    const all = [...this.controls.values()];
    this.controls.clear();
    for (let i = 0; i < all.length; i += 500) await Promise.all(all.slice(i, i + 500).map((ctl) => ctl.quit()));
  }
}
