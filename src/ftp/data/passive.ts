// A passive-mode data connection (PASV/EPSV): one listener that accepts exactly one socket from the
// control connection's address, then stops listening at once. Main thread. Invariants: the
// listener never outlives its session's use of it — closed when replaced by the next PASV/EPSV/PORT, when a connection is accepted, when
// unused for unusedTimeoutMs, and when the control connection closes; an accepted socket that no
// transfer claims is destroyed after unusedTimeoutMs (pauseOnConnect hides its FIN, so waiting for
// it would leak a CLOSE-WAIT socket); peers from other addresses are refused. A plain connection is
// taken over from the accepted socket (socket-reader.ts), which leaves the listener with no
// connection: its port goes back to the pool at accept, not when the data connection ends (a new
// listener on it gets only new connections; one that cannot bind moves to the next port).

import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Duplex } from 'node:stream';
import { DropftpError } from '../../errors.ts';
import { registerDataSocket } from './clean-end.ts';
import { adoptAccepted } from './socket-reader.ts';
import { sameAddress, whenSessionReused, type DataConnector } from './connector.ts';
import type { PassivePortPool } from './passive-ports.ts';

export interface PassiveOptions {
  pool: PassivePortPool;
  /** Local address to listen on (the control connection's local address). */
  host: string;
  /** The control connection's peer: the only address allowed to connect. */
  peerAddress: string;
  /** Wrap the data socket in TLS (PROT P) with this shared context. */
  secureContext: SecureContext | null;
  /** With TLS: refuse a data connection that does not resume a TLS session (connector.ts). */
  requireSessionReuse?: boolean;
  unusedTimeoutMs: number;
  /** Called once for each refused peer (for counters and logs). */
  onRefused?: (remoteAddress: string | undefined) => void;
}

type Waiter = { resolve: (socket: Duplex) => void; reject: (err: Error) => void; timer: NodeJS.Timeout };

export class PassiveConnector implements DataConnector {
  readonly kind = 'passive' as const;
  port = 0;
  #server: Server | null;
  #socket: Duplex | null = null;
  /** A TLS data socket whose session reuse is still being checked (handshake running). */
  #handshaking: Duplex | null = null;
  #claimed = false;
  #closed = false;
  #unusedTimer: NodeJS.Timeout | null = null;
  #waiters: Waiter[] = [];
  readonly #options: PassiveOptions;

  private constructor(options: PassiveOptions) {
    this.#options = options;
    this.#server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => this.#onConnection(socket));
  }

  static async open(options: PassiveOptions): Promise<PassiveConnector> {
    const connector = new PassiveConnector(options);
    const server = connector.#server!;
    try {
      connector.port = await options.pool.listen(server, options.host);
    } catch (err) {
      connector.close();
      throw err;
    }
    if (connector.#closed) {
      server.close();
      throw new DropftpError('DROPFTP_ERR_NO_DATA_CONNECTION', 'passive listener closed while opening');
    }
    // Only now: during listen() the pool itself handles EADDRINUSE and moves to the next port.
    connector.#server!.on('error', () => connector.close());
    connector.#armUnused();
    return connector;
  }

  waitForSocket(timeoutMs: number): Promise<Duplex> {
    if (this.#closed) return Promise.reject(noConnection('data connection closed'));
    if (this.#socket) return Promise.resolve(this.#claim(this.#socket));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(noConnection('no data connection within timeout'));
        this.close();
      }, timeoutMs);
      const waiter: Waiter = { resolve, reject, timer };
      this.#waiters.push(waiter);
    });
  }

  close(reason?: DropftpError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearUnused();
    this.#server?.close();
    this.#server = null;
    this.#handshaking?.destroy();
    this.#handshaking = null;
    const socket = this.#socket;
    this.#socket = null;
    // A claimed socket belongs to its transfer, which ends or destroys it; an unclaimed one is ours.
    if (socket && !this.#claimed) socket.destroy();
    for (const waiter of this.#waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(reason ?? noConnection('data connection closed'));
    }
  }

  end(): void {
    this.close();
  }

  #onConnection(raw: Socket): void {
    raw.on('error', () => {});
    if (this.#closed || this.#socket || !sameAddress(raw.remoteAddress, this.#options.peerAddress)) {
      this.#options.onRefused?.(raw.remoteAddress);
      raw.destroy();
      return;
    }
    // One connection per listener: stop listening now, so the port returns to the pool.
    this.#server?.close();
    this.#server = null;
    let socket: Duplex = raw;
    if (this.#options.secureContext) {
      const secure = new TLSSocket(raw, { isServer: true, secureContext: this.#options.secureContext }); // allowHalfOpen from raw
      secure.on('error', () => {});
      socket = secure;
      if (this.#options.requireSessionReuse) {
        // Claimable only after the handshake proved the session was resumed; the listener is gone,
        // so a refused connection ends this connector (the transfer waiting on it gets 425).
        registerDataSocket(secure, raw);
        this.#handshaking = secure;
        whenSessionReused(secure).then(
          () => {
            this.#handshaking = null;
            this.#accepted(secure);
          },
          (err: DropftpError) => this.close(err),
        );
        return;
      }
    }
    let tcp = raw;
    if (socket === raw) {
      // Plain TCP: read through buffers of ours, so that a STOR reads into its ring (socket-reader.ts).
      const adopted = adoptAccepted(raw);
      if (adopted) {
        adopted.on('error', () => {});
        socket = tcp = adopted;
      }
    }
    registerDataSocket(socket, tcp);
    this.#accepted(socket);
  }

  #accepted(socket: Duplex): void {
    if (this.#closed) return void socket.destroy();
    socket.once('close', () => {
      if (!this.#claimed) this.close();
    });
    this.#socket = socket;
    const waiter = this.#waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.resolve(this.#claim(socket));
    } else {
      this.#armUnused();
    }
  }

  #claim(socket: Duplex): Duplex {
    this.#claimed = true;
    this.#clearUnused();
    return socket;
  }

  #armUnused(): void {
    this.#clearUnused();
    this.#unusedTimer = setTimeout(() => this.close(), this.#options.unusedTimeoutMs);
    this.#unusedTimer.unref();
  }

  #clearUnused(): void {
    if (this.#unusedTimer) clearTimeout(this.#unusedTimer);
    this.#unusedTimer = null;
  }
}

function noConnection(message: string): DropftpError {
  return new DropftpError('DROPFTP_ERR_NO_DATA_CONNECTION', message);
}
