// What a transfer command needs from a data connection, whichever mode opened it. Main thread.
// Invariants: a session holds at most one connector; close() is idempotent and frees its listener,
// socket and timers at once; waitForSocket() always settles (event-driven, never polled).

import type { Duplex } from 'node:stream';

export interface DataConnector {
  readonly kind: 'passive' | 'active';
  /** Resolves with the data socket once connected; rejects with DROPFTP_ERR_NO_DATA_CONNECTION. */
  waitForSocket(timeoutMs: number): Promise<Duplex>;
  /** Frees everything (listener, socket, timers). Idempotent. */
  close(): void;
  /** ftp-srv calls connector.end() when the control socket closes. */
  end(): void;
}

/** The empty slot: ftp-srv's base connector would answer with a bluebird rejection. */
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
