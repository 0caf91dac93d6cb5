// One FTP control connection (an FtpSession): command lines in, replies out, the session's state
// (login, data connector, REST, TYPE, PROT, MLST facts). Main thread. Invariants: commands run one
// at a time in arrival order, urgent ones (ABOR, STAT, QUIT, NOOP) also during a transfer; every
// failure is its registry reply (src/errors.ts); a reply is one write and never forges a line.

import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { DropftpError, toDropftpError } from '../errors.ts';
import type { ConnectionTicket } from '../limits/access-limiter.ts';
import { parseCommand } from './command-line.ts';
import { NO_CONNECTOR, type DataConnector } from './data/connector.ts';
import type { SessionFs } from './fs/types.ts';
import { DEFAULT_REPLY_TEXT } from './ftp-srv-parts.ts';
import { LineReader } from './line-reader.ts';
import { MLST_FACTS, type ActiveTransfer, type Command, type CommandSpec, type FtpSession, type MlstFact, type ReplyLine, type ReplyOptions, type SessionHost } from './session-types.ts';

/** RFC 959's verbs dropftp does not implement: 502; any other unknown verb is 500 (RFC 959 4.2). */
const UNIMPLEMENTED_VERBS = new Set(['ACCT', 'SMNT', 'REIN']);

export type { ActiveTransfer, FtpSession } from './session-types.ts';

export interface SessionOrigin {
  /** The real client address (a PROXY header's source), else the socket's peer. */
  peerAddress?: string;
  localAddress?: string;
  /** This session's hold on the server's AccessLimiter. */
  ticket?: ConnectionTicket;
}

export class ControlConnection extends EventEmitter implements FtpSession {
  readonly id = randomUUID();
  readonly server: SessionHost;
  commandSocket: Socket;
  connector: DataConnector = NO_CONNECTOR;
  files: SessionFs | null = null;
  /** Per-user additions to the server's blacklist (upper-case verbs). */
  userBlacklist: ReadonlySet<string> = new Set();
  transfer: ActiveTransfer | null = null;
  renameFrom: string | null = null;
  dataProtection: 'C' | 'P' = 'C';
  transferType: 'binary' | 'ascii' = 'binary';
  bufferSize: number | false = false;
  failedLogins = 0;
  epsvAll = false;
  quitting = false;
  keptSizeOffered: string | null = null;
  lastDataSetup: 'PASV' | 'EPSV' | 'PORT' | 'EPRT' | '' = '';
  mlstFacts: ReadonlySet<MlstFact> = new Set(MLST_FACTS);
  secure = false;
  username: string | undefined = undefined;
  authenticated = false;
  /** Kept: a TLS upgrade replaces commandSocket. */
  readonly controlLocalAddress: string;
  readonly controlPeerAddress: string;
  readonly ticket: ConnectionTicket | null;
  #lines: LineReader;
  readonly #queue: Command[] = [];
  #restOffset = 0;
  #pumping = false;
  #readPaused = false;
  #urgentRunning = 0;
  #closed = false;
  #closeAfterReply = false;
  /** Set by closeWhenIdle(): the reply the session closes with once its running command is done. */
  #closeWhenIdle: { code: number; message: string } | null = null;
  /** Closes the connection if it has not logged in by then (limits.loginTimeoutMs). */
  #loginTimer: NodeJS.Timeout | null = null;

  constructor(server: SessionHost, socket: Socket, origin: SessionOrigin = {}) {
    super();
    this.server = server;
    this.commandSocket = socket;
    this.controlLocalAddress = origin.localAddress ?? socket.localAddress ?? '';
    this.controlPeerAddress = origin.peerAddress ?? socket.remoteAddress ?? '';
    this.ticket = origin.ticket ?? null;
    this.#lines = new LineReader(server.limits.maxLineBytes);
    socket.on('error', (error) => server.emit('client-error', { connection: this, context: 'commandSocket', error }));
    socket.on('data', (chunk: Buffer | string) => this.#onData(chunk));
    socket.on('timeout', () => this.#onIdle());
    socket.once('close', () => this.#onClose());
    this.#armLoginTimer();
  }

  /** Starts limits.loginTimeoutMs (at accept, and again when a USER drops a login). */
  #armLoginTimer(): void {
    const loginMs = this.server.limits.loginTimeoutMs;
    if (loginMs <= 0 || this.#loginTimer || this.#closed) return;
    this.#loginTimer = setTimeout(() => this.#onLoginTimeout(), loginMs);
    this.#loginTimer.unref();
  }

  setConnector(next: DataConnector): void {
    const previous = this.connector;
    this.connector = next;
    if (previous !== next) previous.close();
  }

  closeConnector(): void {
    this.setConnector(NO_CONNECTOR);
  }

  setRestOffset(offset: number): void {
    this.#restOffset = offset;
  }

  takeRestOffset(): number {
    const offset = this.#restOffset;
    this.#restOffset = 0;
    return offset;
  }

  /**
   * Forgets every command line received after the one running (queued, or partly read): AUTH TLS
   * calls it once the socket is secured. Bytes a client sent in the clear behind AUTH TLS, before
   * the handshake, must not run as if they had come over TLS (a man in the middle could prepend
   * "USER x" to the client's AUTH TLS: CVE-2011-0411, CVE-2011-1575).
   */
  discardPendingInput(): void {
    this.#queue.length = 0;
    this.#lines = new LineReader(this.server.limits.maxLineBytes);
    this.#maybeResume();
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  #onData(chunk: Buffer | string): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
    for (const event of this.#lines.push(bytes)) {
      if ('tooLong' in event) {
        this.#queue.push({ directive: '', arg: '', tooLong: true });
      } else {
        const command = parseCommand(event.line);
        const spec = this.server.commands.get(command.directive);
        if (this.transfer && spec?.urgent) {
          // Counted: a client that sends urgent commands and never reads their replies must be
          // paused like a pipelining one, or every reply waits in memory.
          this.#urgentRunning++;
          void this.#execute(command).finally(() => {
            this.#urgentRunning--;
            this.#maybeResume();
          });
          continue;
        }
        this.#queue.push(command);
      }
    }
    // Pipelined commands beyond the limit: stop reading until the queue drains (bounded memory).
    const max = this.server.limits.maxQueuedCommands;
    if ((this.#queue.length > max || this.#urgentRunning > max) && !this.#readPaused) {
      this.#readPaused = true;
      this.commandSocket.pause();
    }
    void this.#pump();
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#queue.length && !this.#closed && !this.#closeWhenIdle) {
        await this.#execute(this.#queue.shift()!);
        this.#maybeResume();
      }
    } finally {
      this.#pumping = false;
    }
    if (this.#closeWhenIdle) this.#closeNowIdle();
  }

  /** The graceful close's last step, once no command runs: its reply, then the end (once). */
  #closeNowIdle(): void {
    const reply = this.#closeWhenIdle;
    if (!reply || this.#closed || this.#closeAfterReply) return;
    this.#closed = true;
    this.#queue.length = 0;
    void this.close(reply.code, reply.message);
  }

  #maybeResume(): void {
    const half = this.server.limits.maxQueuedCommands / 2;
    if (this.#readPaused && this.#queue.length <= half && this.#urgentRunning <= half) {
      this.#readPaused = false;
      this.commandSocket.resume();
    }
  }

  async #execute(command: Command): Promise<void> {
    try {
      if (command.tooLong) throw new DropftpError('DROPFTP_ERR_LINE_TOO_LONG');
      // A line of blanks, or one that starts with a space (" NOOP"): no verb, not a line too long.
      if (command.directive === '') throw new DropftpError('DROPFTP_ERR_NO_VERB');
      const spec = this.server.commands.get(command.directive);
      if (!spec) {
        const code = UNIMPLEMENTED_VERBS.has(command.directive) ? 'DROPFTP_ERR_UNKNOWN_COMMAND' : 'DROPFTP_ERR_NO_VERB';
        throw new DropftpError(code, `unknown verb ${command.directive.slice(0, 16)}`);
      }
      if (!this.#allowed(spec, command.directive)) throw new DropftpError('DROPFTP_ERR_PERMISSION', `${command.directive} is not allowed here`);
      if (!spec.noAuth && !this.authenticated) throw new DropftpError('DROPFTP_ERR_NOT_LOGGED_IN');
      if (this.server.requireTls && !this.secure && (spec.name === 'USER' || spec.name === 'PASS')) {
        throw new DropftpError('DROPFTP_ERR_TLS_REQUIRED', 'login before TLS', { clientDetail: 'use AUTH TLS or implicit FTPS' });
      }
      await spec.handler(this, command);
    } catch (err) {
      const error = toDropftpError(err);
      this.server.emit('client-error', { connection: this, context: 'command', error });
      await this.replyError(error);
    }
  }

  /** Blacklists match the verb, every alias, and the verbs it writes like (APPE/STOU → STOR). */
  #allowed(spec: CommandSpec, directive: string): boolean {
    const names = [spec.name, directive, ...(spec.aliases ?? []), ...(spec.guardedBy ?? [])];
    const { blacklist, whitelist } = this.server;
    if (names.some((name) => blacklist.has(name) || this.userBlacklist.has(name))) return false;
    if (whitelist.size > 0 && !names.slice(0, 2 + (spec.aliases?.length ?? 0)).some((name) => whitelist.has(name))) return false;
    return true;
  }

  #onLoginTimeout(): void {
    this.#loginTimer = null;
    if (this.authenticated || this.#closed) return;
    const error = new DropftpError('DROPFTP_ERR_LOGIN_TIMEOUT');
    this.#closed = true;
    this.#queue.length = 0;
    void this.close(error.ftpCode, error.clientText);
  }

  #onIdle(): void {
    if (this.transfer || this.#closed) return; // a transfer is watched by its own stall timeout
    const error = new DropftpError('DROPFTP_ERR_IDLE_TIMEOUT');
    void this.close(error.ftpCode, error.clientText);
  }

  #onClose(): void {
    this.#closed = true;
    this.#clearLoginTimer();
    this.#queue.length = 0;
    // A client gone without QUIT is interrupted: its upload, even if its data connection ended
    // (a killed client closes both), commits nothing unless its commit is already on its way.
    if (!this.quitting) this.transfer?.abort(new DropftpError('DROPFTP_ERR_CLIENT_GONE', 'control connection closed'));
    this.closeConnector();
  }

  /**
   * Logs in through the server's authenticator, under the access limiter: a banned address gets
   * 421 and the connection closes, unchecked; a failed login waits the limiter's delay before its
   * 530, and the failure that bans the address closes the connection after its 421; a user over
   * its session cap gets 421 and the connection closes. A previous login is dropped first.
   */
  async login(username: string, password: string): Promise<void> {
    this.logout();
    const ticket = this.ticket;
    const banned = ticket?.checkLogin();
    if (banned) throw this.#closingWith(new DropftpError('DROPFTP_ERR_BANNED'));
    let result: Awaited<ReturnType<SessionHost['authenticate']>>;
    try {
      result = await this.server.authenticate(this, username, password);
    } catch (err) {
      const failure = ticket && err instanceof DropftpError && err.code === 'DROPFTP_ERR_LOGIN_FAILED' ? ticket.loginFailed() : null;
      if (failure) {
        if (failure.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, failure.delayMs));
        if (failure.banned) {
          this.server.emit('banned', { address: this.controlPeerAddress, username });
          throw this.#closingWith(new DropftpError('DROPFTP_ERR_BANNED'));
        }
      }
      throw err;
    }
    const overCap = ticket?.loginSucceeded(username);
    if (overCap) this.server.emit('refused', { address: this.controlPeerAddress, reason: overCap.reason, detail: `user ${username}: ${overCap.reply}` });
    if (overCap) throw this.#closingWith(new DropftpError('DROPFTP_ERR_TOO_MANY_CONNECTIONS', 'Too many sessions for this user'));
    this.files = result.fs;
    this.userBlacklist = new Set((result.blacklist ?? []).map((verb) => verb.toUpperCase()));
    this.username = username;
    this.authenticated = true;
    this.#clearLoginTimer();
  }

  #clearLoginTimer(): void {
    if (this.#loginTimer) clearTimeout(this.#loginTimer);
    this.#loginTimer = null;
  }

  logout(): void {
    if (!this.authenticated) return;
    this.authenticated = false;
    this.files = null;
    this.userBlacklist = new Set();
    this.renameFrom = null;
    this.#restOffset = 0;
    this.closeConnector();
    this.ticket?.logout();
    // Logged out by a new USER: the next login has the same time as the first.
    this.#armLoginTimer();
  }

  reply(options: number | ReplyOptions, ...lines: ReplyLine[]): Promise<void> {
    const opts: ReplyOptions = typeof options === 'number' ? { code: options } : options;
    const code = opts.code ?? 0;
    const items = lines.length ? lines : [undefined];
    let text = '';
    items.forEach((line, index) => {
      let message = '';
      let raw = false;
      if (line !== null && typeof line === 'object') {
        message = line.message === undefined ? '' : String(line.message);
        raw = line.raw === true;
      } else if (line !== null && line !== undefined) {
        message = String(line);
      }
      if (opts.useEmptyMessage) return;
      if (!message && !raw) message = DEFAULT_REPLY_TEXT[code] ?? 'No information';
      message = message.replace(/[\r\n]/g, ' ');
      const last = index === items.length - 1;
      const separator = opts.eol === undefined ? (last ? ' ' : '-') : opts.eol ? ' ' : '-';
      text += (raw || !code ? message : `${code}${separator}${message}`) + '\r\n';
    });
    const socket = opts.socket ?? this.commandSocket;
    const written = writeText(socket, text);
    if (!this.#closeAfterReply || socket !== this.commandSocket) return written;
    this.#closeAfterReply = false;
    this.#closed = true;
    return written.then(() => void socket.destroySoon());
  }

  replyError(error: DropftpError): Promise<void> {
    return this.reply(error.ftpCode, error.clientText);
  }

  /** Marks the session for closing right after its next reply (the error's); returns the error. */
  #closingWith(error: DropftpError): DropftpError {
    this.#closeAfterReply = true;
    this.#queue.length = 0; // nothing pipelined behind this command runs
    this.commandSocket.setTimeout(10_000, () => this.commandSocket.destroy());
    return error;
  }

  close(code = 421, message = 'Closing connection'): Promise<void> {
    const socket = this.commandSocket;
    return (code ? this.reply(code, message) : Promise.resolve()).then(() => {
      socket.destroySoon(); // ends once the reply is flushed, then destroys: no timer left behind
    });
  }

  /**
   * Graceful end: the command running now (a transfer included) finishes with its own reply, then
   * the session closes with this reply; nothing queued behind it runs. Resolves once closed.
   */
  closeWhenIdle(code: number, message: string): Promise<void> {
    const closed = this.#closed || this.commandSocket.destroyed ? Promise.resolve() : new Promise<void>((resolve) => this.commandSocket.once('close', () => resolve()));
    if (!this.#closed && !this.#closeWhenIdle) {
      this.#closeWhenIdle = { code, message };
      this.#queue.length = 0;
      if (!this.#pumping) this.#closeNowIdle();
    }
    return closed;
  }

  /** Abortive end: the running transfer is aborted (nothing half-uploaded commits), the socket destroyed. */
  destroy(error: DropftpError): void {
    this.transfer?.abort(error);
    if (!this.#closed && this.commandSocket.writable) this.commandSocket.write(`${error.ftpCode} ${error.clientText}\r\n`);
    this.#closed = true;
    this.commandSocket.destroy();
  }
}

function writeText(socket: Socket, text: string): Promise<void> {
  if (!text || !socket.writable) return Promise.resolve();
  return new Promise((resolve) => {
    socket.write(text, 'utf8', () => resolve());
  });
}
