// An active-mode data connection (PORT/EPRT): the server connects out, only ever to the control
// connection's own address (the FTP bounce attack, GHSA-jw37-5gqr-cf9j) and a port of 1024 or more
// (RFC 2577). Main thread.
// Invariants: waitForSocket settles on connect, error or timeout (never polled); TLS uses the
// server's one shared SecureContext; an unclaimed socket is destroyed after unusedTimeoutMs and on
// close().

import { connect, type Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Duplex } from 'node:stream';
import { DropftpError } from '../../errors.ts';
import { registerDataSocket } from './clean-end.ts';
import { readerForConnect } from './socket-reader.ts';
import { sameAddress, whenSessionReused, type DataConnector } from './connector.ts';

export interface ActiveOptions {
  host: string;
  port: number;
  family: 4 | 6;
  peerAddress: string;
  localAddress: string | undefined;
  secureContext: SecureContext | null;
  /** With TLS: refuse a data connection that does not resume a TLS session (connector.ts). */
  requireSessionReuse?: boolean;
  unusedTimeoutMs: number;
}

export class ActiveConnector implements DataConnector {
  readonly kind = 'active' as const;
  #socket: Socket;
  #data: Duplex;
  #ready: Promise<Duplex>;
  #claimed = false;
  #closed = false;
  #unusedTimer: NodeJS.Timeout;

  /** Throws DROPFTP_ERR_PERMISSION when the target is not the client's own address. */
  constructor(options: ActiveOptions) {
    if (!sameAddress(options.host, options.peerAddress)) {
      throw new DropftpError('DROPFTP_ERR_PERMISSION', 'PORT/EPRT address is not the client address');
    }
    if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
      throw new DropftpError('DROPFTP_ERR_BAD_COMMAND', 'PORT/EPRT port out of range');
    }
    // RFC 2577 3: no data connection to a privileged port (the client's own sshd, smtpd…, with
    // bytes a user uploaded), and 504 as the refusal. vsftpd and pure-ftpd refuse them too.
    if (options.port < 1024) {
      throw new DropftpError('DROPFTP_ERR_PARAMETER_NOT_SUPPORTED', `PORT/EPRT to privileged port ${options.port}`, { clientDetail: 'ports below 1024 are refused' });
    }
    // Plain TCP reads through buffers of ours, so that a STOR reads into its ring (socket-reader.ts).
    const reader = options.secureContext ? null : readerForConnect();
    const socket = connect({ host: options.host, port: options.port, family: options.family, localAddress: options.localAddress, allowHalfOpen: true, ...(reader ? { onread: reader.onread } : {}) });
    reader?.bind(socket);
    socket.on('error', () => {});
    this.#socket = socket;
    const secure = options.secureContext ? new TLSSocket(socket, { isServer: true, secureContext: options.secureContext }) : null; // allowHalfOpen comes from the TCP socket
    this.#data = secure ?? socket;
    registerDataSocket(this.#data, socket);
    secure?.on('error', () => {});
    this.#ready = new Promise<Duplex>((resolve, reject) => {
      socket.once('connect', () => {
        if (secure && options.requireSessionReuse) whenSessionReused(secure).then(resolve, reject);
        else resolve(this.#data);
      });
      socket.once('close', () => reject(new DropftpError('DROPFTP_ERR_NO_DATA_CONNECTION', 'active data connection failed')));
    });
    this.#ready.catch(() => {});
    this.#unusedTimer = setTimeout(() => this.close(), options.unusedTimeoutMs);
    this.#unusedTimer.unref();
  }

  waitForSocket(timeoutMs: number): Promise<Duplex> {
    if (this.#closed) return Promise.reject(new DropftpError('DROPFTP_ERR_NO_DATA_CONNECTION', 'data connection closed'));
    this.#claimed = true;
    clearTimeout(this.#unusedTimer);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new DropftpError('DROPFTP_ERR_NO_DATA_CONNECTION', 'active connect timed out'));
        this.#socket.destroy();
      }, timeoutMs);
    });
    return Promise.race([this.#ready, timeout]).finally(() => clearTimeout(timer));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#unusedTimer);
    if (!this.#claimed || this.#socket.connecting) this.#socket.destroy();
  }

  end(): void {
    this.close();
  }
}
