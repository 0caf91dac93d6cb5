// A small FTP control client for access tests: chooses its source address (127.0.0.x), can start
// with a PROXY header, speak implicit TLS, or upgrade with AUTH TLS, and opens passive data
// connections (plain or TLS, with or without resuming the control TLS session). Test code only.

import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';

export interface Reply {
  code: number;
  text: string;
}

export interface ConnectOptions {
  port: number;
  host?: string;
  localAddress?: string;
  /** Bytes written before anything else (a PROXY header). */
  preamble?: Buffer | string;
  implicitTls?: boolean;
}

export class Ftp {
  socket: Socket;
  tls: TLSSocket | null = null;
  /** The control connection's TLS session, once the server sent one (TLS 1.3 tickets come late). */
  session: Buffer | null = null;
  closed = false;
  #buffer = '';
  #replies: Reply[] = [];
  #waiters: ((reply: Reply | null) => void)[] = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    this.#attach(socket);
  }

  #attach(socket: Socket): void {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.#onData(text));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.#waiters.splice(0)) w(null);
    });
  }

  /** Connects and reads the greeting (or the refusal) — returned as `first`. */
  static async open(options: ConnectOptions): Promise<{ ftp: Ftp; first: Reply | null }> {
    const host = options.host ?? '127.0.0.1';
    const raw = netConnect({ port: options.port, host, localAddress: options.localAddress });
    raw.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      raw.once('connect', resolve);
      raw.once('error', reject);
    });
    if (options.preamble) raw.write(options.preamble);
    let socket: Socket = raw;
    let secure: TLSSocket | null = null;
    if (options.implicitTls) {
      secure = tlsConnect({ socket: raw, rejectUnauthorized: false, servername: 'localhost' });
      socket = secure;
    }
    const ftp = new Ftp(socket);
    if (secure) ftp.#watchSession(secure);
    return { ftp, first: await ftp.readOrNull(5000) };
  }

  static async connect(options: ConnectOptions): Promise<Ftp> {
    const { ftp, first } = await Ftp.open(options);
    if (first?.code !== 220) throw new Error(`greeting: ${first ? first.text : 'none (closed)'}`);
    return ftp;
  }

  #watchSession(secure: TLSSocket): void {
    this.tls = secure;
    secure.on('session', (session: Buffer) => (this.session = session));
  }

  async authTls(): Promise<void> {
    const reply = await this.cmd('AUTH TLS');
    if (reply.code !== 234) throw new Error(`AUTH TLS: ${reply.text}`);
    const raw = this.socket;
    raw.removeAllListeners('data');
    const secure = tlsConnect({ socket: raw, rejectUnauthorized: false, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.socket = secure;
    this.#attach(secure);
    this.#watchSession(secure);
  }

  #onData(text: string): void {
    this.#buffer += text;
    for (;;) {
      const end = this.#buffer.indexOf('\r\n');
      if (end === -1) return;
      const line = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 2);
      if (!/^\d{3} /.test(line)) continue; // multi-line bodies: only the last line counts here
      const reply = { code: Number(line.slice(0, 3)), text: line };
      const waiter = this.#waiters.shift();
      if (waiter) waiter(reply);
      else this.#replies.push(reply);
    }
  }

  readOrNull(timeoutMs = 5000): Promise<Reply | null> {
    const queued = this.#replies.shift();
    if (queued) return Promise.resolve(queued);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        resolve(null);
      }, timeoutMs);
      const waiter = (reply: Reply | null): void => {
        clearTimeout(timer);
        resolve(reply);
      };
      this.#waiters.push(waiter);
    });
  }

  async read(timeoutMs = 5000): Promise<Reply> {
    const reply = await this.readOrNull(timeoutMs);
    if (!reply) throw new Error(`no reply within ${timeoutMs} ms (closed: ${this.closed})`);
    return reply;
  }

  async cmd(line: string, timeoutMs = 5000): Promise<Reply> {
    this.socket.write(line + '\r\n');
    return this.read(timeoutMs);
  }

  async login(user: string, password: string): Promise<Reply> {
    const u = await this.cmd(`USER ${user}`);
    if (u.code !== 331) return u;
    return this.cmd(`PASS ${password}`, 20_000);
  }

  async epsv(): Promise<number> {
    const reply = await this.cmd('EPSV');
    const m = /\(\|\|\|(\d+)\|\)/.exec(reply.text);
    if (reply.code !== 229 || !m) throw new Error(`EPSV: ${reply.text}`);
    return Number(m[1]);
  }

  /** Opens the data connection for the last EPSV; TLS when `tls`, resuming `session` if given. */
  async data(port: number, options: { localAddress?: string; tls?: boolean; session?: Buffer | null } = {}): Promise<Duplex & { reused?: boolean }> {
    const raw = netConnect({ port, host: '127.0.0.1', localAddress: options.localAddress });
    await new Promise<void>((resolve, reject) => {
      raw.once('connect', resolve);
      raw.once('error', reject);
    });
    if (!options.tls) return raw;
    const secure = tlsConnect({ socket: raw, rejectUnauthorized: false, servername: 'localhost', session: options.session ?? undefined });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    return Object.assign(secure, { reused: secure.isSessionReused() });
  }

  close(): void {
    this.socket.destroy();
  }
}

export function readAll(socket: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
