// Tells a data connection's clean end (the client's FIN) from a reset that the kernel reported as
// an end. Main thread. Why: when a RST arrives while received bytes still wait in the socket,
// libuv reads them, sees POLLHUP after a short read and reports EOF without reading the pending
// ECONNRESET, so an upload cut by the client looks complete. A zero-length write on the TCP socket
// settles it: the kernel answers it with the pending error on a reset socket (state CLOSE) and
// accepts it on a half-closed one (CLOSE_WAIT). Invariants: data sockets are opened with
// allowHalfOpen (an automatic FIN of ours would make the probe fail on clean ends); TLS data
// connections are probed on their TCP socket (an empty TLS write never reaches the kernel), and
// end cleanly only once their handshake completed. Not told apart here: a TLS data connection
// that ends with a bare FIN after its handshake, without close_notify (Node shows both the same).

import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

const tcpSockets = new WeakMap<Duplex, Socket>();
/** TLS data connections whose handshake completed ('secure'). */
const secured = new WeakSet<Duplex>();
const EMPTY = Buffer.alloc(0);

/** Records the TCP socket under a data connection (itself, or the socket a TLSSocket wraps). */
export function registerDataSocket(data: Duplex, tcp: Socket): void {
  tcpSockets.set(data, tcp);
  if (data !== tcp) data.once('secure', () => secured.add(data));
}

/** False for a TLS data connection whose handshake has not completed (true for plain TCP). */
export function handshakeDone(data: Duplex): boolean {
  const tcp = tcpSockets.get(data);
  return tcp === undefined || tcp === data || secured.has(data);
}

/**
 * Resolves true when the peer ended the connection cleanly, false when it was reset (or the probe
 * could not run). Call it on the data stream's 'end', before committing anything.
 */
export function confirmCleanEnd(data: Duplex, timeoutMs = 5000): Promise<boolean> {
  const tcp = tcpSockets.get(data) ?? (data as Socket);
  if (tcp.destroyed || !tcp.writable || typeof tcp.write !== 'function') return Promise.resolve(false);
  // A TLS data connection that ended before its handshake finished carried no byte of the file:
  // its end is a client gone (Node's TLSSocket reports a bare FIN then as an end), never a file.
  if (!handshakeDone(data)) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    let settled = false;
    const settle = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      tcp.off('close', onClose);
      resolve(ok);
    };
    const onClose = (): void => settle(false);
    const timer = setTimeout(() => settle(false), timeoutMs);
    timer.unref();
    tcp.once('close', onClose);
    try {
      tcp.write(EMPTY, (err) => settle(!err));
    } catch {
      settle(false);
    }
  });
}
