// The client end of TLS in tests: trusts the self-signed CN=localhost certificates the tests make
// with openssl, and can offer a saved session (an FTPS data connection resuming the control
// connection's TLS session). Test code only; main thread.

import type { Socket } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';

/** Starts a TLS client over a connected socket; the handshake runs on its own (see `handshake`). */
export function secureClient(socket: Socket, session?: Buffer | null): TLSSocket {
  return connect({ socket, rejectUnauthorized: false, servername: 'localhost', session: session ?? undefined });
}

/** Resolves once the handshake is done; rejects on a TLS or socket error before that. */
export function handshake(secure: TLSSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    secure.once('secureConnect', resolve);
    secure.once('error', reject);
  });
}
