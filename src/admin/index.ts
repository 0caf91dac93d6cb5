// The status page of the admin listener, assembled: what it observes (session-watch.ts: commands and
// files; recent.ts: errors, finished transfers, commit batches), its data (status-model.ts) and its
// HTTP side (status-routes.ts, access.ts). Main thread. Invariants: built before the FTP server (its
// command table and its users' file systems are wrapped here), attached once the server exists; the
// token is read at construction, so a bad token stops the start-up with a message naming its source.

import { DropftpError, ERRORS, type ErrorCode } from '../errors.ts';
import type { FtpServer } from '../ftp/server.ts';
import type { CommandSpec } from '../ftp/commands/types.ts';
import type { SessionFs } from '../ftp/fs/types.ts';
import type { TransferRecord } from '../lifecycle/transfer-watch.ts';
import type { Logger } from '../log/logger.ts';
import { AdminAccess, type AccessOptions } from './access.ts';
import { RecentActivity } from './recent.ts';
import { SessionWatch } from './session-watch.ts';
import { StatusModel } from './status-model.ts';
import { StatusRoutes } from './status-routes.ts';

export interface StatusPageOptions extends AccessOptions {
  /** The admin listener's configured host (loopback: no token needed unless requireToken). */
  host: string;
}

/** How long a disconnected client may take to read its 421 before its socket is destroyed. */
const DISCONNECT_GRACE_MS = 2000;

export class StatusPage {
  readonly watch = new SessionWatch();
  readonly recent = new RecentActivity();
  readonly access: AdminAccess;
  readonly #startedAtMs = Date.now();

  constructor(options: StatusPageOptions) {
    this.access = new AdminAccess(options.host, options);
  }

  wrapCommands(commands: Map<string, CommandSpec>): Map<string, CommandSpec> {
    return this.watch.wrap(commands);
  }

  observeFs(fs: SessionFs, sessionId: string): SessionFs {
    return this.watch.observeFs(fs, sessionId);
  }

  /** A finished file transfer (TransferWatch's record): kept for the page; failures are errors. */
  transferEnded(record: TransferRecord): void {
    const atMs = Date.now();
    this.recent.transfers.push({ atMs, user: record.user, path: record.path, direction: record.direction, bytes: record.bytes, durationMs: record.durationMs, result: record.result });
    if (record.result !== 'ok') {
      const text = Object.hasOwn(ERRORS, record.result) ? ERRORS[record.result as ErrorCode].text : '';
      this.recent.errors.push({ atMs, kind: `${record.command} failed`, user: record.user, client: record.client, path: record.path, code: record.result, message: `${record.ftpCode} ${text}`.trim() });
    }
  }

  commitBatch(entries: number): void {
    this.recent.commitBatches.push(entries);
  }

  /** Observes the FTP server and returns the admin listener's routes; returns also the detach function. */
  attach(ftp: FtpServer, engine: () => unknown, log: Logger): { routes: StatusRoutes; detach: () => void } {
    const detachWatch = this.watch.attach(ftp);
    const onServerError = ({ error }: { error?: unknown }): void => {
      this.recent.errors.push({ atMs: Date.now(), kind: 'FTP listener', user: null, client: null, path: null, code: (error as { code?: string } | undefined)?.code ?? 'error', message: 'listener error (see the logs)' });
    };
    ftp.on('server-error', onServerError);
    const model = new StatusModel({ sessions: () => ftp.sessions.values(), watch: this.watch, recent: this.recent, engine, startedAtMs: this.#startedAtMs });
    const routes = new StatusRoutes({
      access: this.access,
      model,
      log,
      disconnect: (id) => {
        const session = ftp.sessions.get(id);
        if (!session) return null;
        const ended = { user: session.authenticated ? (session.username ?? null) : null, client: session.controlPeerAddress };
        session.transfer?.abort(new DropftpError('DROPFTP_ERR_ABORTED', 'disconnected from the status page'));
        const socket = session.commandSocket;
        void session.close(421, 'Disconnected by the server administrator');
        setTimeout(() => socket.destroy(), DISCONNECT_GRACE_MS).unref();
        return ended;
      },
    });
    return {
      routes,
      detach: () => {
        detachWatch();
        ftp.off('server-error', onServerError);
      },
    };
  }
}
