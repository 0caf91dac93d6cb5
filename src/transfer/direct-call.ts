// A content call over an HTTP/1.1 connection of this thread's own, whose 2xx body the socket reads
// straight into the sink's memory (net/tls `onread`): for a download, the kernel copies the body
// into ring memory and nothing else copies it. Through undici each socket chunk was read into a
// fresh buffer (page faults, external memory, major GCs), copied into llhttp's wasm memory to be
// parsed, and copied once more into the ring: one download through a worker cost 3.4-4.6 CPU-s/GiB
// against 1.6 this way (bench:engine, 2-core machine).
// Any thread (the download loop of workers/download-task.ts). Invariants: `done` settles exactly
// once and never rejects; it settles only once the socket can no longer read into a region the sink
// gave (a call that did not end cleanly destroys its socket first), so the sink's memory may be
// reused after it; a region is asked for only while the body is read and is filled by that call
// alone; the answer is counted once (request-counts.ts); a non-2xx body is collected (bounded) and
// classified, never given to the sink; after abort() or a sink's failure the sink gets nothing more;
// a connection is reused only after a whole, well-framed answer that did not ask to close.

import net from 'node:net';
import tls from 'node:tls';
import type { IncomingHttpHeaders } from 'node:http';
import { classifyErrorText, classifyThrown, contentHeaders } from './dropbox-http.ts';
import type { ContentCall, Failure } from './dropbox-http.ts';
import { countRequest } from './request-counts.ts';

/** What the sink says to a piece: take more, pause the socket until resume(), or stop the call. */
export type SinkAnswer = true | false | Failure;

/** Where a 2xx answer's body goes. */
export interface DirectSink {
  /** A 2xx answer's status and headers: null to take its body, or why not (the call stops). */
  start(statusCode: number, headers: IncomingHttpHeaders): Failure | null;
  /** The next piece of the body, from a scratch buffer (valid only during this call: copy what is kept). */
  data(chunk: Buffer): SinkAnswer;
  /**
   * Where the next at most `most` body bytes may be read to (memory the sink owns), or null: they
   * come to data() from a scratch buffer instead. Asked before each read of the body.
   */
  space(most: number): Uint8Array | null;
  /** `n` body bytes were read into the start of the region space() gave last. */
  placed(n: number): SinkAnswer;
}

/** How a call ended: its whole body taken (`failure` null), or why not; status 0: no answer. */
export interface DirectOutcome {
  statusCode: number;
  failure: Failure | null;
}

export interface DirectCallSpec extends Omit<ContentCall, 'dispatcher' | 'body' | 'bodyBytes'> {
  pool: DirectPool;
}

export interface DirectPoolOptions {
  connectTimeoutMs: number;
  /** From the request written to the end of the answer's head. */
  headersTimeoutMs: number;
  /** Longest gap between two reads of the body while it is read (not while the sink paused it). */
  bodyTimeoutMs: number;
  /** An idle connection is closed after this long. */
  keepAliveMs: number;
  /** Idle connections kept per origin. */
  maxIdlePerOrigin: number;
  /** Certificates (PEM) trusted for https origins instead of Node's bundled ones (absent: those). */
  ca?: string;
}

const DEFAULTS: DirectPoolOptions = { connectTimeoutMs: 10_000, headersTimeoutMs: 60_000, bodyTimeoutMs: 60_000, keepAliveMs: 4_000, maxIdlePerOrigin: 32 };

/** Bytes of a non-2xx body kept for its classification (Dropbox error bodies are small JSON). */
const ERROR_BODY_BYTES = 64 * 1024;
/** Longest answer head accepted. */
const MAX_HEAD_BYTES = 64 * 1024;
/** Scratch reads (heads, chunked bodies, a full ring): libuv's usual read size. */
const SCRATCH_BYTES = 64 * 1024;
/** Most bytes read in place at once. */
const MAX_PLACED_READ = 1024 * 1024;

class Conn {
  call: DirectCall | null = null;
  idleTimer: ReturnType<typeof setTimeout> | null = null;
  readonly socket: net.Socket;
  /** Whether a request was already answered on it (a reused connection may have been closed by the server meanwhile). */
  used = false;

  constructor(
    readonly pool: DirectPool,
    readonly origin: string,
    url: URL,
  ) {
    const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    // The call pauses the socket itself when its sink asks to: the callback's answer is always true.
    const onread = { buffer: () => this.nextBuffer(), callback: (n: number, buf: Uint8Array) => (this.onRead(n, buf), true) };
    if (url.protocol === 'https:') {
      // tls.connect takes onread as net.connect does (Node's TLSSocket wraps the same stream), though
      // @types/node lists it only for net.
      const ca = pool.options.ca;
      this.socket = tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, ALPNProtocols: ['http/1.1'], onread, ...(ca ? { ca } : {}) } as tls.ConnectionOptions);
    } else {
      this.socket = net.connect({ host, port, onread });
    }
    this.socket.setNoDelay(true);
    this.socket.on('error', (err) => this.call?.socketFailed(err));
    this.socket.on('end', () => this.call?.socketEnded());
    this.socket.on('close', () => {
      this.pool.forget(this);
      this.call?.socketFailed(new Error('other side closed'));
    });
  }

  private nextBuffer(): Uint8Array {
    return this.call?.regionForNextRead() ?? this.pool.scratch;
  }

  private onRead(n: number, buf: Uint8Array): void {
    if (!this.call) {
      // Bytes nobody asked for (an idle connection): it is out of step; drop it.
      this.socket.destroy();
      return;
    }
    this.call.read(buf, n);
  }
}

/** This thread's connections to the content hosts (keep-alive, by origin). */
export class DirectPool {
  readonly options: DirectPoolOptions;
  /** Shared by every connection: a scratch read is wholly handled before the next read. */
  readonly scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
  private readonly idle = new Map<string, Conn[]>();
  private readonly all = new Set<Conn>();
  private closed = false;

  constructor(
    /** The control words answers are counted in (null: not counted). */
    readonly words: Int32Array | null,
    options: Partial<DirectPoolOptions> = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  /** An idle connection to url's origin, or a new one (fresh: a new one even when one is idle). */
  take(url: URL, fresh = false): Conn {
    if (this.closed) throw new Error('connection pool closed');
    const list = this.idle.get(url.origin);
    const conn = fresh ? undefined : list?.pop();
    if (conn) {
      if (conn.idleTimer) clearTimeout(conn.idleTimer);
      conn.idleTimer = null;
      conn.socket.ref();
      return conn;
    }
    const made = new Conn(this, url.origin, url);
    this.all.add(made);
    return made;
  }

  /** A connection whose answer ended cleanly, for the next call to its origin. */
  giveBack(conn: Conn): void {
    conn.call = null;
    conn.used = true;
    let list = this.idle.get(conn.origin);
    if (!list) this.idle.set(conn.origin, (list = []));
    if (this.closed || list.length >= this.options.maxIdlePerOrigin || conn.socket.destroyed) {
      conn.socket.destroy();
      return;
    }
    list.push(conn);
    conn.socket.unref();
    conn.idleTimer = setTimeout(() => conn.socket.destroy(), this.options.keepAliveMs);
    conn.idleTimer.unref();
  }

  /** A connection closed: no longer offered. */
  forget(conn: Conn): void {
    this.all.delete(conn);
    if (conn.idleTimer) clearTimeout(conn.idleTimer);
    conn.idleTimer = null;
    const list = this.idle.get(conn.origin);
    const i = list ? list.indexOf(conn) : -1;
    if (i >= 0) list!.splice(i, 1);
  }

  /** Closes idle connections now, and every other one as its call ends. */
  close(): void {
    this.closed = true;
    for (const list of this.idle.values()) for (const conn of list.splice(0)) conn.socket.destroy();
  }

  /** Closes every connection now (their calls fail). */
  destroy(): void {
    this.close();
    for (const conn of [...this.all]) conn.socket.destroy();
  }
}

type Framing = { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' };
type ChunkState = 'size' | 'data' | 'data-crlf' | 'trailers';

export class DirectCall {
  readonly done: Promise<DirectOutcome>;
  private settle!: (outcome: DirectOutcome) => void;
  private conn: Conn | null = null;
  private readonly url: URL;
  private readonly requestHead: string;
  private statusCode = 0;
  private retryAfter: string | undefined;
  private stopped: Failure | null = null;
  private finished = false;
  private retriedStale = false;
  /** 'head' until the answer's head is read, then 'body', then 'done'. */
  private phase: 'head' | 'body' | 'done' = 'head';
  private head: Buffer | null = null;
  private framing: Framing = { kind: 'close' };
  private keepAlive = false;
  private errorBody: Buffer[] | null = null;
  private errorBytes = 0;
  private paused = false;
  /** The region the sink gave for the read now pending (null: scratch). */
  private region: Uint8Array | null = null;
  private chunkState: ChunkState = 'size';
  private chunkLeft = 0;
  private line = '';
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerMs = 0;
  private timerWhat = '';
  private gotBytes = false;
  private counted = false;

  constructor(
    private readonly spec: DirectCallSpec,
    private readonly sink: DirectSink,
  ) {
    this.done = new Promise((resolve) => (this.settle = resolve));
    this.url = new URL(`${spec.account.contentUrl}/2/${spec.route}`);
    let head = '';
    try {
      const headers: Record<string, string> = { host: this.url.host, ...contentHeaders({ ...spec, dispatcher: null as never }), 'content-length': '0' };
      head = `POST ${this.url.pathname}${this.url.search} HTTP/1.1\r\n`;
      for (const [name, value] of Object.entries(headers)) {
        if (/[\r\n\0]/.test(name) || /[\r\n\0]/.test(value)) throw new Error(`header ${name} holds a line break`);
        head += `${name}: ${value}\r\n`;
      }
      head += '\r\n';
    } catch (err) {
      this.requestHead = '';
      this.count(0);
      this.finish({ statusCode: 0, failure: classifyThrown(err) });
      return;
    }
    this.requestHead = head;
    this.send(false);
  }

  /** Continues a body paused by the sink (its data() answered false). */
  resume(): void {
    if (this.finished || !this.paused || !this.conn) return;
    this.paused = false;
    this.armTimer(this.spec.pool.options.bodyTimeoutMs);
    this.conn.socket.resume();
  }

  /** Stops the call: `done` reports `failure`. */
  abort(failure: Failure): void {
    if (this.finished || this.stopped) return;
    this.stopped = failure;
    this.fail(failure);
  }

  private send(fresh: boolean): void {
    let conn: Conn;
    try {
      conn = this.spec.pool.take(this.url, fresh);
    } catch (err) {
      this.count(0);
      this.finish({ statusCode: 0, failure: classifyThrown(err) });
      return;
    }
    this.conn = conn;
    conn.call = this;
    if (conn.socket.connecting) {
      this.armTimer(this.spec.pool.options.connectTimeoutMs, 'connect timeout');
      conn.socket.once(conn.socket instanceof tls.TLSSocket ? 'secureConnect' : 'connect', () => {
        if (conn.call === this && !this.finished) this.armTimer(this.spec.pool.options.headersTimeoutMs, 'headers timeout');
      });
    } else {
      this.armTimer(this.spec.pool.options.headersTimeoutMs, 'headers timeout');
    }
    conn.socket.write(this.requestHead, 'latin1');
    if (conn.socket.isPaused()) conn.socket.resume();
  }

  /** (Re)starts the call's one timer: `what` fails the call after `ms` unless re-armed or cleared. */
  private armTimer(ms: number, what = 'body timeout'): void {
    if (this.timer && this.timerMs === ms && this.timerWhat === what) {
      this.timer.refresh();
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timerMs = ms;
    this.timerWhat = what;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.finished) this.fail(classifyThrown(Object.assign(new Error(`${this.spec.route}: ${what} (${ms} ms)`), { code: 'ETIMEDOUT' })));
    }, ms);
  }

  /** Called by the connection for the buffer of its next read. */
  regionForNextRead(): Uint8Array | null {
    this.region = null;
    if (this.phase !== 'body' || this.finished || this.errorBody || this.framing.kind !== 'length' || this.paused) return null;
    const most = Math.min(this.framing.left, MAX_PLACED_READ);
    if (most <= 0) return null;
    const region = this.sink.space(most);
    if (!region || region.length === 0) return null;
    this.region = region.length > most ? region.subarray(0, most) : region;
    return this.region;
  }

  /** `n` bytes were read into `buf` (the scratch buffer or the region given for this read). */
  read(buf: Uint8Array, n: number): void {
    if (this.finished) return;
    this.gotBytes = true;
    const region = this.region;
    this.region = null;
    if (region && (buf === region || (buf.buffer === region.buffer && buf.byteOffset === region.byteOffset))) {
      // In place: only ever in a length-framed 2xx body, at most what it has left.
      const framing = this.framing as { kind: 'length'; left: number };
      framing.left -= n;
      this.armTimer(this.spec.pool.options.bodyTimeoutMs);
      const answer = this.sink.placed(n);
      if (!this.answered(answer)) return;
      if (framing.left === 0) this.complete();
      return;
    }
    this.consume(Buffer.from(buf.buffer, buf.byteOffset, n));
  }

  /** Bytes from the scratch buffer: the head, then body pieces by the answer's framing. */
  private consume(data: Buffer): void {
    let at = 0;
    while (at < data.length && !this.finished) {
      if (this.phase === 'head') {
        at = this.readHead(data, at);
        continue;
      }
      const framing = this.framing;
      if (framing.kind === 'chunked') {
        at = this.readChunked(data, at);
        continue;
      }
      let end = data.length;
      if (framing.kind === 'length') end = Math.min(data.length, at + framing.left);
      const piece = data.subarray(at, end);
      at = end;
      if (framing.kind === 'length') framing.left -= piece.length;
      if (!this.body(piece)) return;
      if (framing.kind === 'length' && framing.left === 0) {
        // Bytes after the end of the answer: the connection is out of step (never reused).
        if (at < data.length) this.keepAlive = false;
        this.complete();
        return;
      }
    }
    if (this.phase === 'body' && !this.finished && !this.paused) this.armTimer(this.spec.pool.options.bodyTimeoutMs);
  }

  /** Parses the head from data[at..]; returns where its body starts (or data.length). */
  private readHead(data: Buffer, at: number): number {
    const prev = this.head ? this.head.length : 0;
    const joined = this.head ? Buffer.concat([this.head, data.subarray(at)]) : data.subarray(at);
    const end = joined.indexOf('\r\n\r\n', Math.max(0, prev - 3), 'latin1');
    if (end < 0) {
      if (joined.length > MAX_HEAD_BYTES) {
        this.fail({ kind: 'retry', reason: `${this.spec.route}: answer head over ${MAX_HEAD_BYTES} B`, retryAfterMs: 0, throttle: null });
        return data.length;
      }
      this.head = Buffer.from(joined);
      return data.length;
    }
    this.head = null;
    const consumed = end + 4 - prev;
    const lines = joined.toString('latin1', 0, end).split('\r\n');
    const status = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
    if (!status) {
      this.fail({ kind: 'retry', reason: `${this.spec.route}: malformed status line ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`, retryAfterMs: 0, throttle: null });
      return data.length;
    }
    const code = Number(status[2]);
    const headers: Record<string, string | string[]> = Object.create(null);
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0 || /[\s]/.test(line[0]!)) {
        this.fail({ kind: 'retry', reason: `${this.spec.route}: malformed header line`, retryAfterMs: 0, throttle: null });
        return data.length;
      }
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      const prevValue = headers[name];
      if (prevValue === undefined) headers[name] = value;
      else if (Array.isArray(prevValue)) prevValue.push(value);
      else headers[name] = [prevValue, value];
    }
    const next = at + consumed;
    if (code < 200) return next; // 1xx: the real answer follows
    this.statusCode = code;
    this.count(code);
    const connection = String(headers['connection'] ?? '').toLowerCase();
    this.keepAlive = status[1] === '1' ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
    const te = headers['transfer-encoding'];
    const cl = headers['content-length'];
    if (te !== undefined) {
      if (!/^chunked$/i.test(String(te).trim())) {
        this.fail({ kind: 'retry', reason: `${this.spec.route}: unsupported transfer-encoding ${String(te)}`, retryAfterMs: 0, throttle: null });
        return data.length;
      }
      this.framing = { kind: 'chunked' };
    } else if (cl !== undefined) {
      const text = Array.isArray(cl) ? (cl.every((v) => v === cl[0]) ? cl[0]! : '') : cl;
      if (!/^\d{1,15}$/.test(text)) {
        this.fail({ kind: 'retry', reason: `${this.spec.route}: bad content-length ${JSON.stringify(String(cl))}`, retryAfterMs: 0, throttle: null });
        return data.length;
      }
      this.framing = { kind: 'length', left: Number(text) };
    } else {
      this.framing = { kind: 'close' };
      this.keepAlive = false;
    }
    this.phase = 'body';
    this.armTimer(this.spec.pool.options.bodyTimeoutMs);
    if (code >= 300) {
      this.errorBody = [];
      const ra = headers['retry-after'];
      this.retryAfter = Array.isArray(ra) ? ra[0] : ra;
    } else {
      const refused = this.sink.start(code, headers as IncomingHttpHeaders);
      if (refused) {
        this.abort(refused);
        return data.length;
      }
    }
    if (this.framing.kind === 'length' && this.framing.left === 0) {
      if (next < data.length) this.keepAlive = false;
      this.complete();
    }
    return next;
  }

  /** Chunked framing (scratch only); returns where it stopped. */
  private readChunked(data: Buffer, at: number): number {
    while (at < data.length && !this.finished && this.phase === 'body') {
      if (this.chunkState === 'data') {
        const end = Math.min(data.length, at + this.chunkLeft);
        const piece = data.subarray(at, end);
        this.chunkLeft -= piece.length;
        at = end;
        if (this.chunkLeft === 0) this.chunkState = 'data-crlf';
        if (!this.body(piece)) return data.length;
        continue;
      }
      const nl = data.indexOf(10, at);
      const upto = nl < 0 ? data.length : nl + 1;
      this.line += data.toString('latin1', at, upto);
      at = upto;
      if (this.line.length > 4096) {
        this.fail({ kind: 'retry', reason: `${this.spec.route}: malformed chunked body`, retryAfterMs: 0, throttle: null });
        return data.length;
      }
      if (nl < 0) return at;
      const line = this.line.replace(/\r?\n$/, '');
      this.line = '';
      if (this.chunkState === 'data-crlf') {
        if (line !== '') {
          this.fail({ kind: 'retry', reason: `${this.spec.route}: malformed chunked body`, retryAfterMs: 0, throttle: null });
          return data.length;
        }
        this.chunkState = 'size';
      } else if (this.chunkState === 'size') {
        const m = /^([0-9a-fA-F]{1,12})(?:\s*;.*)?$/.exec(line.trim());
        if (!m) {
          this.fail({ kind: 'retry', reason: `${this.spec.route}: malformed chunk size`, retryAfterMs: 0, throttle: null });
          return data.length;
        }
        this.chunkLeft = parseInt(m[1]!, 16);
        this.chunkState = this.chunkLeft === 0 ? 'trailers' : 'data';
      } else if (line === '') {
        // The last chunk and its trailers are read (anything after them: out of step, not reused).
        if (at < data.length) this.keepAlive = false;
        this.complete();
        return data.length;
      }
    }
    return at;
  }

  /** A piece of the body: to the error collector, or to the sink. False: stop reading (paused or over). */
  private body(piece: Buffer): boolean {
    if (piece.length === 0) return true;
    if (this.errorBody) {
      if (this.errorBytes < ERROR_BODY_BYTES) {
        const take = piece.subarray(0, ERROR_BODY_BYTES - this.errorBytes);
        this.errorBody.push(Buffer.from(take));
        this.errorBytes += take.length;
      }
      return true;
    }
    return this.answered(this.sink.data(piece));
  }

  /** Acts on a sink's answer; false when reading stops (paused, or the call is over). */
  private answered(answer: SinkAnswer): boolean {
    if (answer === true) return !this.finished;
    if (answer === false) {
      if (this.finished) return false;
      this.paused = true;
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.conn?.socket.pause();
      // A paused call still completes if this was its last byte (the caller checks framing first).
      return this.framing.kind === 'length' && this.framing.left === 0;
    }
    this.abort(answer);
    return false;
  }

  /** The whole answer was read. */
  private complete(): void {
    if (this.finished) return;
    this.phase = 'done';
    if (this.stopped) return this.fail(this.stopped);
    let failure: Failure | null = null;
    if (this.errorBody) {
      failure = classifyErrorText(this.statusCode, Buffer.concat(this.errorBody).toString('utf8'), this.retryAfter);
    }
    const conn = this.detach();
    if (conn) {
      if (this.keepAlive && !conn.socket.destroyed) {
        if (conn.socket.isPaused()) conn.socket.resume();
        this.spec.pool.giveBack(conn);
      } else conn.socket.destroy();
    }
    this.finish({ statusCode: this.statusCode, failure });
  }

  /** The server ended its side. */
  socketEnded(): void {
    if (this.finished) return;
    if (this.phase === 'body' && this.framing.kind === 'close') {
      this.keepAlive = false;
      this.complete();
      return;
    }
    this.socketFailed(new Error('other side closed'));
  }

  socketFailed(err: Error): void {
    if (this.finished) return;
    // A reused connection the server closed while it idled: nothing was answered; once more on a new one.
    if (this.conn?.used && !this.gotBytes && this.phase === 'head' && !this.retriedStale && !this.stopped) {
      this.retriedStale = true;
      this.detach()?.socket.destroy();
      this.send(true);
      return;
    }
    this.fail(this.stopped ?? classifyThrown(err));
  }

  /** Ends the call with `failure`: the socket is destroyed first (no read lands after done). */
  private fail(failure: Failure): void {
    if (this.finished) return;
    this.detach()?.socket.destroy();
    if (this.statusCode === 0) this.count(0);
    this.finish({ statusCode: this.statusCode, failure });
  }

  /** Lets go of the connection (its reads no longer reach this call) and stops the timer. */
  private detach(): Conn | null {
    const conn = this.conn;
    this.conn = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (conn) conn.call = null;
    return conn;
  }

  private count(status: number): void {
    if (this.counted) return;
    this.counted = true;
    const words = this.spec.pool.words;
    if (words) countRequest(words, this.spec.route, status);
  }

  private finish(outcome: DirectOutcome): void {
    if (this.finished) return;
    this.finished = true;
    this.phase = 'done';
    this.settle(outcome);
  }
}
