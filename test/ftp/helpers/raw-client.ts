// The test side of an FTP control connection over a real socket: sends raw bytes and parses replies
// (multi-line aware, RFC 959 4.2); can choose its source address, start with a PROXY protocol header,
// speak implicit TLS, or upgrade with AUTH TLS (RFC 4217), keeping the TLS session for data
// connections. Test code only; main thread. Each reply goes to exactly one read, in order.

import { connect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { handshake, secureClient } from './tls-client.ts';

// The data-connection and waiting helpers live beside this file; importers get them from here.
export { download, listenData, openData, openSecureData, readAll, readUntilClose, resetStor, sendUpload, upload, type ActiveDataListener, type ActiveDataOptions, type SecureDataOptions } from './data-connection.ts';
export { sleep, tcpHandles, timers, until } from '../../helpers/wait.ts';

export interface Reply {
  code: number;
  text: string;
  lines: string[];
}

export interface ConnectOptions {
  port: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Source address (any 127.0.0.x on loopback): per-address limits see it as the client. */
  localAddress?: string;
  /** Bytes written before anything else: a PROXY protocol v1 line or v2 header. */
  preamble?: Buffer | string;
  /** TLS from the first byte (after the preamble), as on an implicit FTPS port. */
  implicitTls?: boolean;
}

export class RawFtp {
  /** Default reply timeout (the load generator raises it: real clients wait far longer than 5 s). */
  static defaultTimeoutMs = 5000;
  #socket: Socket;
  #tls: TLSSocket | null = null;
  #session: Buffer | null = null;
  #buffer = '';
  #replies: Reply[] = [];
  #waiters: ((reply: Reply | null) => void)[] = [];
  #closed = false;

  private constructor(socket: Socket) {
    this.#socket = socket;
    this.#attach(socket);
  }

  #attach(socket: Socket): void {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.#onData(text));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.#closed = true;
      for (const waiter of this.#waiters.splice(0)) waiter(null);
    });
  }

  /** Connects and reads the first reply: the greeting, a refusal, or null when closed without one. */
  static async open(options: ConnectOptions): Promise<{ ftp: RawFtp; first: Reply | null }> {
    const raw = connect({ port: options.port, host: options.host ?? '127.0.0.1', localAddress: options.localAddress });
    raw.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      raw.once('connect', resolve);
      raw.once('error', reject);
    });
    if (options.preamble) raw.write(options.preamble);
    // Implicit TLS: the handshake is not awaited, so a refusal (or a close) during it reads as `first`.
    const secure = options.implicitTls ? secureClient(raw) : null;
    const ftp = new RawFtp(secure ?? raw);
    if (secure) ftp.#keepSession(secure);
    return { ftp, first: await ftp.readOrNull() };
  }

  /** Connects and reads the greeting; rejects unless it is a 220. */
  static connect(port: number, host?: string): Promise<RawFtp>;
  static connect(options: ConnectOptions): Promise<RawFtp>;
  static async connect(portOrOptions: number | ConnectOptions, host = '127.0.0.1'): Promise<RawFtp> {
    const options = typeof portOrOptions === 'number' ? { port: portOrOptions, host } : portOrOptions;
    const { ftp, first } = await RawFtp.open(options);
    if (!first) throw new Error(`no greeting within ${RawFtp.defaultTimeoutMs} ms (closed: ${ftp.closed})`);
    if (first.code !== 220) throw new Error(`greeting ${first.code} ${first.text}`);
    return ftp;
  }

  /** The control socket now: the TLS socket after `authTls()` or with implicit TLS. */
  get socket(): Socket {
    return this.#socket;
  }

  /** The control connection's TLS socket, or null while it is plain. */
  get tls(): TLSSocket | null {
    return this.#tls;
  }

  /** The control connection's latest TLS session (TLS 1.3 tickets come after the handshake), for data connections to resume. */
  get session(): Buffer | null {
    return this.#session;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The TLS session once the server has sent one: at once when `session` is set, else at the next
   * ticket (TLS 1.3 sends them after the handshake, so right after `authTls()` there may be none yet).
   * Rejects while the control connection is plain, when it closes first, or after timeoutMs.
   */
  waitForSession(timeoutMs = RawFtp.defaultTimeoutMs): Promise<Buffer> {
    if (this.#session) return Promise.resolve(this.#session);
    const secure = this.#tls;
    if (!secure || this.#closed) return Promise.reject(new Error(secure ? 'control connection closed' : 'control connection is not TLS'));
    return new Promise((resolve, reject) => {
      const settle = (session: Buffer | null): void => {
        clearTimeout(timer);
        secure.off('session', onSession);
        secure.off('close', onClose);
        if (session) resolve(session);
        else reject(new Error(`no TLS session within ${timeoutMs} ms (closed: ${this.#closed})`));
      };
      const onSession = (session: Buffer): void => settle(session);
      const onClose = (): void => settle(null);
      const timer = setTimeout(onClose, timeoutMs);
      secure.on('session', onSession);
      secure.on('close', onClose);
    });
  }

  #keepSession(secure: TLSSocket): void {
    this.#tls = secure;
    secure.on('session', (session: Buffer) => (this.#session = session));
  }

  /** AUTH TLS, then the handshake over the same socket; replies are read from the TLS socket after it. */
  /** AUTH TLS and the handshake; `inject`: lines sent in the clear right behind AUTH TLS, in the same write (an attack). */
  async authTls(inject = ''): Promise<Reply> {
    if (inject) this.sendRaw(`AUTH TLS\r\n${inject}`);
    const reply = inject ? await this.read() : await this.cmd('AUTH TLS');
    if (reply.code !== 234) throw new Error(`AUTH TLS: ${reply.text}`);
    const raw = this.#socket;
    raw.removeAllListeners('data');
    const secure = secureClient(raw);
    await handshake(secure);
    this.#socket = secure;
    this.#attach(secure);
    this.#keepSession(secure);
    return reply;
  }

  #onData(text: string): void {
    this.#buffer += text;
    let current: string[] = [];
    for (;;) {
      const end = this.#buffer.indexOf('\r\n');
      if (end === -1) break;
      const line = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 2);
      current.push(line);
      const first = current[0]!;
      const code = first.slice(0, 3);
      const multi = first[3] === '-';
      if (!multi || (line.startsWith(code + ' ') && current.length > 1)) {
        this.#push({ code: Number(code), text: current.join('\n'), lines: current });
        current = [];
      }
    }
    // keep unfinished multi-line replies in the buffer
    if (current.length) this.#buffer = current.map((l) => l + '\r\n').join('') + this.#buffer;
  }

  #push(reply: Reply): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(reply);
    else this.#replies.push(reply);
  }

  /** The next reply; rejects if none arrives within timeoutMs or the connection closes. */
  read(timeoutMs = RawFtp.defaultTimeoutMs): Promise<Reply> {
    return this.readOrNull(timeoutMs).then((reply) => {
      if (!reply) throw new Error(`no reply within ${timeoutMs} ms (closed: ${this.#closed})`);
      return reply;
    });
  }

  readOrNull(timeoutMs = RawFtp.defaultTimeoutMs): Promise<Reply | null> {
    const queued = this.#replies.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#closed) return Promise.resolve(null);
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

  send(line: string): void {
    this.#socket.write(line + '\r\n');
  }

  sendRaw(bytes: Buffer | string): void {
    this.#socket.write(bytes);
  }

  async cmd(line: string, timeoutMs = RawFtp.defaultTimeoutMs): Promise<Reply> {
    this.send(line);
    return this.read(timeoutMs);
  }

  /** A control connection to 127.0.0.1:port, logged in as `user` (throws unless 331 then 230). */
  static async loggedIn(port: number, user: string, password: string): Promise<RawFtp> {
    const c = await RawFtp.connect(port);
    await c.login(user, password);
    return c;
  }

  async login(user = 'alice', password = 'secret'): Promise<void> {
    const r1 = await this.cmd(`USER ${user}`);
    if (r1.code !== 331) throw new Error(`USER: ${r1.text}`);
    const r2 = await this.cmd(`PASS ${password}`);
    if (r2.code !== 230) throw new Error(`PASS: ${r2.text}`);
  }

  /**
   * USER then PASS, never throwing on a refusal: the reply that ended the attempt (230 when logged
   * in; the USER reply when it was not 331). PASS may wait passTimeoutMs: failed-login delays are on purpose.
   */
  async tryLogin(user: string, password: string, passTimeoutMs = 20_000): Promise<Reply> {
    const reply = await this.cmd(`USER ${user}`);
    if (reply.code !== 331) return reply;
    return this.cmd(`PASS ${password}`, passTimeoutMs);
  }

  async pasv(): Promise<{ host: string; port: number }> {
    const reply = await this.cmd('PASV');
    const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(reply.text);
    if (reply.code !== 227 || !m) throw new Error(`PASV: ${reply.text}`);
    return { host: m.slice(1, 5).join('.'), port: Number(m[5]) * 256 + Number(m[6]) };
  }

  async epsv(): Promise<number> {
    const reply = await this.cmd('EPSV');
    const m = /\(\|\|\|(\d+)\|\)/.exec(reply.text);
    if (reply.code !== 229 || !m) throw new Error(`EPSV: ${reply.text}`);
    return Number(m[1]);
  }

  close(): void {
    this.#socket.destroy();
  }
}
