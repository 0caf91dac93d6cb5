// One FTP control connection: ftp-srv's FtpConnection with its command intake replaced. Main
// thread. Invariants: commands run one at a time in arrival order, from complete lines only
// (line-reader.ts); the control socket is never paused, so ABOR/STAT/QUIT/NOOP are read and
// answered during a transfer (ftp-srv paused it for the whole transfer); a handler's failure
// becomes a reply, never an unhandled rejection; replies go out in one write; the idle timeout
// never fires while a transfer runs (stall timeouts guard transfers instead); the peer address is
// the real client's (from a PROXY header when a load balancer stands in front), and the access
// limiter sees every login: a banned address is refused before its password is checked, a failed
// login is answered only after the limiter's delay, a user over its cap is refused after login.

import type { Socket } from 'node:net';
import { DropftpError, toDropftpError } from '../errors.ts';
import type { ConnectionTicket } from '../limits/index.ts';
import { FTP_SRV_MESSAGES, FtpConnection, type ReplyLetter, type ReplyOptions } from './ftp-srv-types.ts';
import { LineReader } from './line-reader.ts';
import { parseCommand, type Command, type CommandSpec } from './commands/types.ts';
import { NO_CONNECTOR, type DataConnector } from './data/connector.ts';
import type { SessionFs } from './fs/types.ts';
import type { FtpServer } from './server.ts';

/** A running data transfer (RETR, STOR, LIST …) that ABOR, QUIT or a closing socket can stop. */
export interface ActiveTransfer {
  readonly directive: string;
  bytes: number;
  /** Stops the transfer; its handler sends the 426 and then settles `done`. */
  abort(err: DropftpError): void;
  readonly done: Promise<void>;
}

export class FtpSession extends FtpConnection {
  declare server: FtpServer;
  declare connector: DataConnector;
  files: SessionFs | null = null;
  /** Per-user additions to the server's blacklist (upper-case verbs). */
  userBlacklist: ReadonlySet<string> = new Set();
  transfer: ActiveTransfer | null = null;
  renameFrom: string | null = null;
  /** RFC 4217 PROT: 'P' makes data connections TLS. */
  dataProtection: 'C' | 'P' = 'C';
  failedLogins = 0;
  /** After EPSV ALL (RFC 2428 4) only EPSV may set up data connections. */
  epsvAll = false;
  lastDataSetup: 'PASV' | 'EPSV' | 'PORT' | 'EPRT' | '' = '';
  /**
   * Addresses of the control connection (kept: a TLS upgrade replaces commandSocket). The peer is
   * the real client: its PROXY-protocol source address when the server takes PROXY headers.
   */
  readonly controlLocalAddress: string;
  readonly controlPeerAddress: string;
  /** This session's hold on the server's AccessLimiter (null for sessions built without one). */
  readonly ticket: ConnectionTicket | null;
  readonly #lines: LineReader;
  readonly #queue: Command[] = [];
  #pumping = false;
  #readPaused = false;
  #urgentRunning = 0;
  #closed = false;
  #closeAfterReply = false;

  constructor(server: FtpServer, socket: Socket, origin: { peerAddress?: string; localAddress?: string; ticket?: ConnectionTicket } = {}) {
    super(server, { log: server.log, socket });
    this.connector = NO_CONNECTOR;
    this.controlLocalAddress = origin.localAddress ?? socket.localAddress ?? '';
    this.controlPeerAddress = origin.peerAddress ?? socket.remoteAddress ?? '';
    this.ticket = origin.ticket ?? null;
    this.#lines = new LineReader(server.limits.maxLineBytes);
    // ftp-srv's own 'timeout' listener closes the connection even mid-transfer: replace it.
    socket.removeAllListeners('timeout');
    socket.on('timeout', () => this.#onIdle());
    socket.once('close', () => this.#onClose());
  }

  /** The one place a data connector is replaced: the previous one is closed first (no leak). */
  setConnector(next: DataConnector): void {
    const previous = this.connector;
    this.connector = next;
    if (previous !== next) previous.close();
  }

  closeConnector(): void {
    this.setConnector(NO_CONNECTOR);
  }

  /** REST offset for the next RETR/STOR, consumed by the call. */
  takeRestOffset(): number {
    const offset = this.restByteCount ?? 0;
    this.restByteCount = 0;
    return offset;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** ftp-srv's `ip` (used in its logs): the real client address. */
  override get ip(): string | undefined {
    return this.controlPeerAddress;
  }

  // ftp-srv binds this as the control socket's 'data' listener.
  _handleData(chunk: Buffer | string): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
    for (const event of this.#lines.push(bytes)) {
      if ('tooLong' in event) {
        this.#queue.push({ directive: '', arg: '' });
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
      while (this.#queue.length && !this.#closed) {
        await this.#execute(this.#queue.shift()!);
        this.#maybeResume();
      }
    } finally {
      this.#pumping = false;
    }
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
      if (command.directive === '') return void (await this.reply(500, 'Command line too long'));
      const spec = this.server.commands.get(command.directive);
      if (!spec) return void (await this.reply(502, 'Command not implemented'));
      if (!this.#allowed(spec, command.directive)) return void (await this.reply(550, 'Permission denied'));
      if (!spec.noAuth && !this.authenticated) return void (await this.reply(530, 'Please login with USER and PASS'));
      if (this.server.requireTls && !this.secure && (spec.name === 'USER' || spec.name === 'PASS')) {
        const error = new DropftpError('DROPFTP_ERR_TLS_REQUIRED');
        return void (await this.reply(error.ftpCode, `${error.clientText} (use AUTH TLS or implicit FTPS)`));
      }
      await spec.handler(this, command);
    } catch (err) {
      const error = toDropftpError(err);
      this.server.emit('client-error', { connection: this, context: 'command', error });
      await this.reply(error.ftpCode, error.clientText);
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

  #onIdle(): void {
    if (this.transfer || this.#closed) return; // a transfer is watched by its own stall timeout
    void this.close(421, 'Idle timeout, closing control connection');
  }

  #onClose(): void {
    this.#closed = true;
    this.#queue.length = 0;
    this.transfer?.abort(new DropftpError('DROPFTP_ERR_CLIENT_GONE', 'control connection closed'));
    this.closeConnector();
  }

  /**
   * Logs in through the server's authenticator (which never lets a handler's failure escape), under
   * the access limiter: a banned address gets 421 and the connection closes, unchecked; a failed
   * login waits the limiter's delay before its 530 (the session stays silent meanwhile), and the
   * failure that bans the address closes the connection after its 421; a user over its session
   * cap gets 421 and the connection closes.
   */
  async login(username: string, password: string): Promise<void> {
    const ticket = this.ticket;
    const banned = ticket?.checkLogin();
    if (banned) throw this.#closingWith(new DropftpError('DROPFTP_ERR_BANNED'));
    let result: Awaited<ReturnType<FtpServer['authenticate']>>;
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
    this.authenticated = true;
  }

  /**
   * Same calling convention as ftp-srv's reply(), but the whole reply is written at once, and CR/LF
   * inside a message (a file name can hold them) can never start a forged reply line.
   */
  reply(options: number | ReplyOptions, ...letters: ReplyLetter[]): Promise<void> {
    const opts: ReplyOptions = typeof options === 'number' ? { code: options } : options;
    const code = opts.code ?? 0;
    const items = letters.length ? letters : [undefined];
    let text = '';
    items.forEach((letter, index) => {
      let message = '';
      let raw = false;
      if (letter !== null && typeof letter === 'object') {
        message = letter.message === undefined ? '' : String(letter.message);
        raw = letter.raw === true;
      } else if (letter !== null && letter !== undefined) {
        message = String(letter);
      }
      if (opts.useEmptyMessage) return;
      if (!message && !raw) message = FTP_SRV_MESSAGES[code] ?? 'No information';
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

  /** Marks the session for closing right after its next reply (the error's); returns the error. */
  #closingWith(error: DropftpError): DropftpError {
    this.#closeAfterReply = true;
    this.#queue.length = 0; // nothing pipelined behind this command runs
    this.commandSocket.setTimeout(10_000, () => this.commandSocket.destroy());
    return error;
  }

  /** Replies, then closes the control connection. */
  close(code = 421, message = 'Closing connection'): Promise<void> {
    const socket = this.commandSocket;
    return (code ? this.reply(code, message) : Promise.resolve()).then(() => {
      socket.destroySoon(); // ends once the reply is flushed, then destroys: no timer left behind
    });
  }
}

function writeText(socket: Socket, text: string): Promise<void> {
  if (!text || !socket.writable) return Promise.resolve();
  return new Promise((resolve) => {
    socket.write(text, 'utf8', () => resolve());
  });
}
