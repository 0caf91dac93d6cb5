// Watches every file transfer command (RETR, STOR, APPE, STOU) by wrapping its handler in the
// command table: reports one record per transfer (the facts of an xferlog line), counts the ones
// running, and refuses new ones (421) once the service drains for shutdown. Main thread.
// Invariants: the wrapped handler behaves exactly like the original (same replies, same errors);
// a record is reported once per command, after its final reply; drain() never aborts anything;
// bytes and outcome come from the runner's 'transfer-end' event (transfer-runner.ts), nothing is
// installed on the session.

import { performance } from 'node:perf_hooks';
import { DropftpError, toDropftpError } from '../errors.ts';
import type { FtpSession } from '../ftp/connection.ts';
import { TRANSFER_END, type TransferEnd } from '../ftp/transfer-runner.ts';
import type { CommandSpec } from '../ftp/commands/types.ts';

export const WATCHED = ['RETR', 'STOR', 'APPE', 'STOU'] as const;

export interface TransferRecord {
  session: string;
  user: string | null;
  client: string;
  command: string;
  direction: 'download' | 'upload';
  path: string;
  bytes: number;
  durationMs: number;
  /** 'ok', or the registry code of the failure (DROPFTP_ERR_…). */
  result: 'ok' | string;
  ftpCode: number;
}

export class TransferWatch {
  readonly #running = new Set<Promise<unknown>>();
  readonly #report: (record: TransferRecord) => void;
  #draining = false;
  #idleWaiters: (() => void)[] = [];

  constructor(report: (record: TransferRecord) => void = () => {}) {
    this.#report = report;
  }

  get running(): number {
    return this.#running.size;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** A copy of the table whose transfer commands are watched (aliases share one wrapped spec). */
  wrap(commands: Map<string, CommandSpec>): Map<string, CommandSpec> {
    const wrapped = new Map<CommandSpec, CommandSpec>();
    const out = new Map<string, CommandSpec>();
    for (const [verb, spec] of commands) {
      if (!(WATCHED as readonly string[]).includes(spec.name)) {
        out.set(verb, spec);
        continue;
      }
      let next = wrapped.get(spec);
      if (!next) {
        next = { ...spec, handler: (session, command) => this.#run(spec, session, command.arg, () => spec.handler(session, command)) };
        wrapped.set(spec, next);
      }
      out.set(verb, next);
    }
    return out;
  }

  /** From now on transfer commands are answered 421; running ones go on. */
  drain(): void {
    this.#draining = true;
  }

  /** Resolves true once no transfer command runs, or false after timeoutMs. */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.#running.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#idleWaiters = this.#idleWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.#idleWaiters.push(done);
    });
  }

  async #run(spec: CommandSpec, session: FtpSession, arg: string, original: () => Promise<void> | void): Promise<void> {
    if (this.#draining) {
      session.closeConnector();
      throw new DropftpError('DROPFTP_ERR_SHUTTING_DOWN');
    }
    const startedAt = performance.now();
    let outcome: DropftpError | null = null;
    let bytes = 0;
    const onEnd = (end: TransferEnd): void => {
      outcome = end.error;
      bytes = end.bytes;
    };
    session.on(TRANSFER_END, onEnd);
    const running = Promise.resolve().then(original);
    this.#running.add(running);
    try {
      await running;
    } catch (err) {
      outcome = toDropftpError(err);
      throw err;
    } finally {
      session.off(TRANSFER_END, onEnd);
      this.#running.delete(running);
      this.#emit(spec.name, session, arg, startedAt, outcome, bytes);
      if (this.#running.size === 0) for (const waiter of this.#idleWaiters.splice(0)) waiter();
    }
  }

  #emit(command: string, session: FtpSession, arg: string, startedAt: number, error: DropftpError | null, bytes: number): void {
    let path = arg;
    try {
      if (session.files && arg) path = session.files.resolve(arg);
    } catch {
      /* keep the argument as sent */
    }
    try {
      this.#report({
        session: session.id,
        user: session.username ?? null,
        client: session.controlPeerAddress,
        command,
        direction: command === 'RETR' ? 'download' : 'upload',
        path,
        bytes,
        durationMs: Math.round(performance.now() - startedAt),
        result: error ? error.code : 'ok',
        ftpCode: error ? error.ftpCode : 226,
      });
    } catch {
      /* a failing reporter must never break a transfer */
    }
  }
}
