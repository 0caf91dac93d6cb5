// A minimal FTP client over a real socket, for protocol tests: sends raw bytes and parses replies
// (multi-line aware, RFC 959 4.2). Test code only.

import { connect, type Socket } from 'node:net';

export interface Reply {
  code: number;
  text: string;
  lines: string[];
}

export class RawFtp {
  /** Default reply timeout (the load generator raises it: real clients wait far longer than 5 s). */
  static defaultTimeoutMs = 5000;
  readonly socket: Socket;
  #buffer = '';
  #replies: Reply[] = [];
  #waiters: ((reply: Reply | null) => void)[] = [];
  #closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.#onData(text));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.#closed = true;
      for (const waiter of this.#waiters.splice(0)) waiter(null);
    });
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<RawFtp> {
    const socket = connect({ port, host });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new RawFtp(socket);
    const greeting = await client.read();
    if (greeting.code !== 220) throw new Error(`greeting ${greeting.code} ${greeting.text}`);
    return client;
  }

  get closed(): boolean {
    return this.#closed;
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
    this.socket.write(line + '\r\n');
  }

  sendRaw(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  async cmd(line: string, timeoutMs = RawFtp.defaultTimeoutMs): Promise<Reply> {
    this.send(line);
    return this.read(timeoutMs);
  }

  async login(user = 'alice', password = 'secret'): Promise<void> {
    const r1 = await this.cmd(`USER ${user}`);
    if (r1.code !== 331) throw new Error(`USER: ${r1.text}`);
    const r2 = await this.cmd(`PASS ${password}`);
    if (r2.code !== 230) throw new Error(`PASS: ${r2.text}`);
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
    this.socket.destroy();
  }
}

export function openData(port: number, host = '127.0.0.1', localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host, localAddress });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Reads a data socket to its end. */
export function readAll(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
    socket.once('close', () => resolve(Buffer.concat(chunks))); // after 'end' this is a no-op
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Count of live TCP handles in this process (client and server ends alike). */
export function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'TCPSocketWrap' || name === 'TCPServerWrap').length;
}

export function timers(): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
}

export async function until(check: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** PASV + a transfer command that reads: returns the final reply and the bytes received. */
export async function download(c: RawFtp, line: string): Promise<{ first: Reply; final: Reply; data: Buffer }> {
  const { port } = await c.pasv();
  const data = await openData(port);
  const received = readAll(data);
  c.send(line);
  const first = await c.read();
  if (first.code >= 400) {
    data.destroy();
    return { first, final: first, data: Buffer.alloc(0) };
  }
  const bytes = await received;
  const final = await c.read(30_000);
  return { first, final, data: bytes };
}

/** PASV + a transfer command that writes `bytes`, ending the data connection cleanly. */
export async function upload(c: RawFtp, line: string, bytes: Buffer): Promise<{ first: Reply; final: Reply }> {
  const { port } = await c.pasv();
  const data = await openData(port);
  c.send(line);
  const first = await c.read();
  if (first.code >= 400) {
    data.destroy();
    return { first, final: first };
  }
  data.end(bytes);
  const final = await c.read(60_000);
  data.destroy();
  return { first, final };
}
