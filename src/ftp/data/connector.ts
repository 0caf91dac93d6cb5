// What a transfer command needs from a data connection, whichever mode opened it. Main thread.
// Invariants: a session holds at most one connector; close() is idempotent and frees its listener,
// socket and timers at once; waitForSocket() always settles (event-driven, never polled); with
// requireSessionReuse a TLS data socket is handed out only once it resumed the control session.

import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { DropftpError } from '../../errors.ts';

export interface DataConnector {
  readonly kind: 'passive' | 'active';
  /** Resolves with the data socket once connected; rejects with DROPFTP_ERR_NO_DATA_CONNECTION. */
  waitForSocket(timeoutMs: number): Promise<Duplex>;
  /** Frees everything (listener, socket, timers). Idempotent. */
  close(): void;
  /** The same as close(): the control connection ended. */
  end(): void;
}

/** The empty slot: a session with no PASV/EPSV/PORT/EPRT in effect (a transfer gets 425). */
export const NO_CONNECTOR: DataConnector = {
  kind: 'passive',
  waitForSocket: () => Promise.reject(new Error('no data connector')),
  close: () => {},
  end: () => {},
};

/** '::ffff:127.0.0.1' and '127.0.0.1' are the same peer; IPv6 compared lower-case. */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return '';
  const lower = address.toLowerCase();
  return lower.startsWith('::ffff:') && lower.includes('.') ? lower.slice(7) : lower;
}

export function sameAddress(a: string | undefined, b: string | undefined): boolean {
  const na = normalizeAddress(a);
  return na !== '' && na === normalizeAddress(b);
}

/**
 * vsftpd's require_ssl_reuse: a PROT P data connection must resume the control connection's TLS
 * session (tickets of the server's one SecureContext), which proves it comes from the client that
 * logged in and not from someone who raced to the passive port. Settles once the handshake is over:
 * the socket when it resumed a session, else a DROPFTP_ERR_NO_DATA_CONNECTION (425) after
 * destroying it.
 */
export function whenSessionReused(secure: TLSSocket): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const onSecure = (): void => {
      secure.off('close', onClose);
      if (secure.isSessionReused()) return resolve(secure);
      secure.destroy();
      reject(new DropftpError('DROPFTP_ERR_NO_DATA_CONNECTION', 'TLS session reuse required on the data connection'));
    };
    const onClose = (): void => {
      secure.off('secure', onSecure);
      reject(new DropftpError('DROPFTP_ERR_NO_DATA_CONNECTION', 'data connection closed during its TLS handshake'));
    };
    secure.once('secure', onSecure);
    secure.once('close', onClose);
  });
}
