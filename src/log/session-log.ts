// One log line per session event (connect, login ok / failed, disconnect) and per transfer (the
// facts of an xferlog: user, client, direction, path, bytes, duration, result). Main thread.
// Invariants: the password is never passed to the logger (only the user name and the outcome);
// listeners added here are removed by the function attach returns.

import type { Logger } from 'pino';
import { toDropftpError } from '../errors.ts';
import type { FtpSession } from '../ftp/connection.ts';
import type { Authenticator, FtpServer, RefusedEvent } from '../ftp/server.ts';
import type { TransferRecord } from '../lifecycle/transfer-watch.ts';

const startedAt = new WeakMap<FtpSession, number>();

/** Logs connect / disconnect / server errors of one FTP server; returns the detach function. */
export function attachSessionLog(ftp: FtpServer, log: Logger): () => void {
  const onConnect = ({ connection }: { connection: FtpSession }): void => {
    startedAt.set(connection, Date.now());
    log.info({ event: 'connect', session: connection.id, client: connection.controlPeerAddress, connections: ftp.connectionCount }, 'session connected');
  };
  const onDisconnect = ({ connection }: { connection: FtpSession }): void => {
    const since = startedAt.get(connection);
    log.info(
      {
        event: 'disconnect',
        session: connection.id,
        client: connection.controlPeerAddress,
        user: connection.authenticated ? (connection.username ?? null) : null,
        durationMs: since === undefined ? undefined : Date.now() - since,
        connections: ftp.connectionCount,
      },
      'session closed',
    );
  };
  const onServerError = ({ error }: { error: unknown }): void => log.error({ event: 'server-error', err: error }, 'FTP listener error');
  // Turned away by a limit or the PROXY protocol (the address is the real client's where known).
  const onRefused = ({ address, reason, detail }: RefusedEvent): void => log.warn({ event: 'refused', client: address, reason, detail }, 'connection refused');
  const onBanned = ({ address, username }: { address: string; username?: string }): void => log.warn({ event: 'banned', client: address, user: username ?? null }, 'address banned after failed logins');
  // A command that failed (the client got its error reply); debug: clients cause these routinely.
  const onClientError = ({ connection, context, error }: { connection?: FtpSession; context?: string; error?: unknown }): void => {
    if (context === 'login' || !log.isLevelEnabled('debug')) return; // logins have their own line
    const e = toDropftpError(error);
    log.debug({ event: 'command-error', session: connection?.id, client: connection?.controlPeerAddress, context, code: e.code, detail: e.message }, 'command failed');
  };
  const listeners: [string, (...args: any[]) => void][] = [
    ['client-error', onClientError],
    ['connect', onConnect],
    ['disconnect', onDisconnect],
    ['server-error', onServerError],
    ['refused', onRefused],
    ['banned', onBanned],
  ];
  for (const [event, listener] of listeners) ftp.on(event, listener);
  return () => {
    for (const [event, listener] of listeners) ftp.off(event, listener);
  };
}

/** The authenticator, with one line per login attempt (never the password). */
export function loggedAuthenticator(authenticate: Authenticator, log: Logger): Authenticator {
  return async (login) => {
    const base = { session: login.session.id, client: login.session.controlPeerAddress, user: login.username };
    try {
      const result = await authenticate(login);
      log.info({ event: 'login', ...base, result: 'ok' }, 'login ok');
      return result;
    } catch (err) {
      const error = toDropftpError(err);
      log.warn({ event: 'login', ...base, result: error.code }, 'login failed');
      throw err;
    }
  };
}

/** The transfer line (xferlog facts); failures at warn level. */
export function logTransfer(log: Logger, record: TransferRecord): void {
  const fields = { event: 'transfer', ...record };
  if (record.result === 'ok') log.info(fields, 'transfer complete');
  else log.warn(fields, 'transfer failed');
}
