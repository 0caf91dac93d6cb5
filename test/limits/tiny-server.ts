// A tiny line-based server that uses AccessLimiter exactly the way the FTP layer will: accept →
// connect() → refuse with the 421 line or greet; USER/PASS → checkLogin, loginSucceeded or
// loginFailed (delay, then 530, closing when banned); close → release. Test helper, main thread.
// Listens on 127.0.0.1 and ::1 so that two distinct client addresses exist on loopback.

import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import type { AccessLimiter } from '../../src/limits/index.ts';

export interface TinyServer {
  port4: number;
  port6: number;
  limiter: AccessLimiter;
  close(): Promise<void>;
}

export async function startTinyServer(limiter: AccessLimiter, passwords: Record<string, string>): Promise<TinyServer> {
  const sockets = new Set<Socket>();
  const handle = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const admission = limiter.connect(socket.remoteAddress);
    if (!admission.ok) {
      socket.end(`${admission.refusal.reply}\r\n`);
      return;
    }
    const ticket = admission.ticket;
    socket.on('close', () => ticket.release());
    socket.write('220 ready\r\n');
    let user = '';
    let buffered = '';
    socket.on('data', (data: Buffer) => {
      buffered += data.toString('latin1');
      let nl: number;
      while ((nl = buffered.indexOf('\r\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 2);
        const [verb, arg = ''] = line.split(' ', 2) as [string, string?];
        if (verb === 'USER') {
          user = arg;
          socket.write('331 password please\r\n');
        } else if (verb === 'PASS') {
          const banned = ticket.checkLogin();
          if (banned) {
            socket.end(`${banned.reply}\r\n`);
          } else if (passwords[user] !== undefined && passwords[user] === arg) {
            const refused = ticket.loginSucceeded(user);
            if (refused) socket.end(`${refused.reply}\r\n`);
            else socket.write('230 logged in\r\n');
          } else {
            const { delayMs, banned: nowBanned } = ticket.loginFailed();
            setTimeout(() => {
              if (socket.destroyed) return;
              if (nowBanned) socket.end('530 Login incorrect\r\n');
              else socket.write('530 Login incorrect\r\n');
            }, delayMs);
          }
        } else socket.write('502 not here\r\n');
      }
    });
  };
  const server4: Server = createServer(handle).listen(0, '127.0.0.1');
  const server6: Server = createServer(handle).listen(0, '::1');
  await Promise.all([once(server4, 'listening'), once(server6, 'listening')]);
  return {
    port4: (server4.address() as { port: number }).port,
    port6: (server6.address() as { port: number }).port,
    limiter,
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all([new Promise((r) => server4.close(r)), new Promise((r) => server6.close(r))]);
    },
  };
}

/** A control-connection client: reads CRLF lines; `closed` resolves when the server hangs up. */
export class LineClient {
  readonly socket: Socket;
  readonly closed: Promise<void>;
  #lines: string[] = [];
  #wake: (() => void) | null = null;
  #buffered = '';
  #ended = false;

  constructor(host: string, port: number) {
    this.socket = connect(port, host);
    this.socket.on('error', () => {});
    this.socket.on('data', (d: Buffer) => {
      this.#buffered += d.toString('latin1');
      let nl: number;
      while ((nl = this.#buffered.indexOf('\r\n')) >= 0) {
        this.#lines.push(this.#buffered.slice(0, nl));
        this.#buffered = this.#buffered.slice(nl + 2);
      }
      this.#wake?.();
    });
    this.closed = new Promise((resolve) =>
      this.socket.on('close', () => {
        this.#ended = true;
        this.#wake?.();
        resolve();
      }),
    );
  }

  /** The next line, or null if the connection closed first. */
  async line(): Promise<string | null> {
    while (this.#lines.length === 0 && !this.#ended) await new Promise<void>((r) => (this.#wake = r));
    this.#wake = null;
    return this.#lines.shift() ?? null;
  }

  async send(line: string): Promise<string | null> {
    this.socket.write(`${line}\r\n`);
    return this.line();
  }

  async login(user: string, password: string): Promise<string | null> {
    await this.send(`USER ${user}`);
    return this.send(`PASS ${password}`);
  }

  close(): Promise<void> {
    this.socket.end();
    return this.closed;
  }
}
