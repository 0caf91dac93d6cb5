// A lean FTP client on raw `net` sockets for the load generator: control-connection reply parser
// (RFC 959 §4.2 multi-line replies), login, EPSV/PASV (RFC 2428 §3 / RFC 959), RETR/STOR data
// connections, ABOR, QUIT. Runs in a load generator process. Invariants: replies are consumed in
// order, one waiter at a time; a closed or failed control connection fails every later wait; no
// timer outlives its wait.

import { connect, type Socket } from 'node:net';
import { READ_SINK } from './pattern.ts';

export interface FtpReply {
  code: number;
  text: string;
}

export class FtpClientError extends Error {
  constructor(
    message: string,
    readonly reply?: FtpReply,
  ) {
    super(message);
  }
}

interface Waiter {
  resolve(reply: FtpReply): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class FtpControl {
  private partial = '';
  private multiCode = 0;
  private multiText = '';
  private readonly queue: FtpReply[] = [];
  private waiter: Waiter | null = null;
  private failure: Error | null = null;
  private epsvWorks = true;

  private constructor(
    readonly socket: Socket,
    readonly host: string,
    readonly replyTimeoutMs: number,
    readonly localAddress: string | undefined,
  ) {
    socket.setEncoding('latin1');
    socket.setNoDelay(true);
    socket.on('data', (text: string) => this.onData(text));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new FtpClientError('control connection closed')));
  }

  /**
   * Connects and reads the 220 greeting. `localAddress` (e.g. 127.1.0.7) makes the session look
   * like its own client host; its data connections then come from the same address, as servers
   * that check passive connections' origin require.
   */
  static async connect(host: string, port: number, replyTimeoutMs = 60_000, localAddress?: string): Promise<FtpControl> {
    const socket = connect(localAddress ? { host, port, localAddress } : { host, port });
    const control = new FtpControl(socket, host, replyTimeoutMs, localAddress);
    const greeting = await control.reply();
    if (greeting.code !== 220) {
      socket.destroy();
      throw new FtpClientError(`greeting ${greeting.code} ${greeting.text}`, greeting);
    }
    return control;
  }

  get closed(): boolean {
    return this.failure !== null;
  }

  private onData(text: string): void {
    this.partial += text;
    let nl: number;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      const line = this.partial.slice(0, nl).replace(/\r$/, '');
      this.partial = this.partial.slice(nl + 1);
      this.onLine(line);
    }
  }

  private onLine(line: string): void {
    const code = Number(line.slice(0, 3));
    const isCode = line.length >= 3 && code >= 100 && code < 600;
    if (this.multiCode) {
      this.multiText += `\n${line}`;
      if (isCode && code === this.multiCode && line[3] !== '-') {
        this.push({ code, text: this.multiText });
        this.multiCode = 0;
      }
      return;
    }
    if (!isCode) return;
    if (line[3] === '-') {
      this.multiCode = code;
      this.multiText = line.slice(4);
      return;
    }
    this.push({ code, text: line.slice(4) });
  }

  private push(reply: FtpReply): void {
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      clearTimeout(w.timer);
      w.resolve(reply);
    } else this.queue.push(reply);
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

  /** The next reply (1xx included). */
  reply(timeoutMs = this.replyTimeoutMs): Promise<FtpReply> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    if (this.waiter) return Promise.reject(new FtpClientError('two waiters on one control connection'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new FtpClientError(`no reply in ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  write(line: string): void {
    if (!this.failure) this.socket.write(`${line}\r\n`);
  }

  /** Sends a command and returns its reply. */
  async send(line: string, timeoutMs?: number): Promise<FtpReply> {
    this.write(line);
    return this.reply(timeoutMs);
  }

  /** Sends a command; throws unless the reply's first digit is in `okFirstDigits`. */
  async expect(line: string, okFirstDigits: string, timeoutMs?: number): Promise<FtpReply> {
    const r = await this.send(line, timeoutMs);
    if (!okFirstDigits.includes(String(r.code)[0]!)) throw new FtpClientError(`${line.split(' ')[0]}: ${r.code} ${r.text}`, r);
    return r;
  }

  async login(user: string, password: string): Promise<void> {
    const r = await this.expect(`USER ${user}`, '23');
    if (r.code === 331) await this.expect(`PASS ${password}`, '2');
    await this.expect('TYPE I', '2');
  }

  /** EPSV (RFC 2428), falling back to PASV once the server refuses it. */
  async passive(): Promise<{ host: string; port: number }> {
    if (this.epsvWorks) {
      const r = await this.send('EPSV');
      const m = /\(([^\d])\1\1(\d+)\1\)/.exec(r.text);
      if (r.code === 229 && m) return { host: this.host, port: Number(m[2]) };
      this.epsvWorks = false;
    }
    const r = await this.expect('PASV', '2');
    const m = /(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)/.exec(r.text);
    if (!m) throw new FtpClientError(`PASV: cannot parse ${r.text}`, r);
    const host = `${m[1]}.${m[2]}.${m[3]}.${m[4]}`;
    return { host: host === '0.0.0.0' ? this.host : host, port: Number(m[5]) * 256 + Number(m[6]) };
  }

  /** QUIT politely; never throws. */
  async quit(): Promise<void> {
    try {
      if (!this.failure) await this.send('QUIT', 5_000);
    } catch {
      // the server may close first
    }
    this.socket.destroy();
  }

  /** Drop without a word: a TCP reset, like a client that crashed. */
  drop(): void {
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
  }
}

/** Bytes read from a data connection: whoever reads them sets `onBytes` (the buffer is shared). */
export interface ReadSink {
  onBytes: (n: number) => void;
}

/**
 * Opens a data connection; resolves once connected. With `sink`, what arrives is read into the
 * process's READ_SINK and only counted (sink.onBytes): no 'data' events.
 */
export function connectData(host: string, port: number, timeoutMs = 30_000, localAddress?: string, sink?: ReadSink): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const onread = sink
      ? {
          buffer: READ_SINK,
          callback: (n: number): boolean => {
            sink.onBytes(n);
            return true;
          },
        }
      : undefined;
    const socket = connect({ host, port, ...(localAddress ? { localAddress } : {}), ...(onread ? { onread } : {}) });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new FtpClientError(`data connection to ${port} timed out`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      resolve(socket);
    });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    socket.once('error', onError);
  });
}
