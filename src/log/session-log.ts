// One log line per session event (connect, login ok / failed, disconnect) and per transfer (the
// facts of an xferlog: user, client, direction, path, bytes, duration, result). Main thread.
// Invariants: the password is never passed to the logger (only the user name and the outcome);
// listeners added here are removed by the function attach returns.

import type { Logger } from 'pino';
import { toDropftpError } from '../errors.ts';
import type { FtpSession } from '../ftp/connection.ts';
import type { Authenticator, FtpServer } from '../ftp/server.ts';
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
  ftp.on('connect', onConnect);
  ftp.on('disconnect', onDisconnect);
  ftp.on('server-error', onServerError);
  return () => {
    ftp.off('connect', onConnect);
    ftp.off('disconnect', onDisconnect);
    ftp.off('server-error', onServerError);
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
