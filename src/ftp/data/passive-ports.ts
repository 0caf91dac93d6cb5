// Hands out passive-mode listening ports from the configured range (or ephemeral ports when no
// range is set). Main thread, one per server. Invariants: listen() always settles — a port lost to
// another process (EADDRINUSE) is skipped, never left hanging; no probe listener; a port is held
// only while its listener is open, and `open` counts exactly those listeners.

import type { Server } from 'node:net';
import { DropftpError } from '../../errors.ts';

export interface PortRange {
  min: number;
  max: number;
}

const MAX_ATTEMPTS = 64;

export class PassivePortPool {
  readonly range: PortRange | null;
  readonly #held = new Set<number>();
  #cursor: number;

  constructor(range: PortRange | null) {
    if (range && !(Number.isInteger(range.min) && Number.isInteger(range.max) && range.min >= 1 && range.max <= 65535 && range.min <= range.max)) {
      throw new DropftpError('DROPFTP_ERR_CONFIG', `pasvPorts: invalid range ${range.min}-${range.max}`);
    }
    this.range = range;
    this.#cursor = range ? range.min : 0;
  }

  /** Listeners currently open through this pool. */
  get open(): number {
    return this.#held.size;
  }

  /** Listens `server` on a free port of the range; releases the port when the server closes. */
  async listen(server: Server, host: string): Promise<number> {
    if (!this.range) {
      await tryListen(server, 0, host);
      const port = portOf(server);
      this.#hold(server, port);
      return port;
    }
    const size = this.range.max - this.range.min + 1;
    const attempts = Math.min(size, MAX_ATTEMPTS);
    for (let tried = 0, scanned = 0; tried < attempts && scanned < size; scanned++) {
      const port = this.#next();
      if (this.#held.has(port)) continue;
      tried++;
      this.#held.add(port); // reserve before awaiting, so concurrent PASVs never pick the same port
      let ok = false;
      try {
        ok = await tryListen(server, port, host);
      } finally {
        if (!ok) this.#held.delete(port);
      }
      if (ok) {
        server.once('close', () => this.#held.delete(port));
        return port;
      }
    }
    throw new DropftpError('DROPFTP_ERR_NO_DATA_CONNECTION', 'no free passive port in range');
  }

  #hold(server: Server, port: number): void {
    this.#held.add(port);
    server.once('close', () => this.#held.delete(port));
  }

  #next(): number {
    const range = this.range!;
    const port = this.#cursor;
    this.#cursor = port >= range.max ? range.min : port + 1;
    return port;
  }
}

/** Resolves true when listening, false on EADDRINUSE/EACCES; rejects on any other error. */
function tryListen(server: Server, port: number, host: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(false);
      else reject(new DropftpError('DROPFTP_ERR_NO_DATA_CONNECTION', err.message, { cause: err }));
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve(true);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ port, host, exclusive: true, backlog: 4 });
  });
}

function portOf(server: Server): number {
  const address = server.address();
  return typeof address === 'object' && address ? address.port : 0;
}
