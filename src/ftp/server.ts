// The FTP server: control listeners (plain, implicit FTPS), admission (PROXY header, limits), one
// ControlConnection per client, the command table, passive ports, the one TLS context. Main thread.
// Invariants: no process-wide side effect; one AccessLimiter ticket per client session, released
// once; close() graceful (running commands finish, then 421), destroy(err) abortive.

import { EventEmitter } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { SecureContext, SecureContextOptions } from 'node:tls';
import { DropftpError } from '../errors.ts';
import { AccessLimiter, NO_LIMITS, type ConnectionTicket, type LimitsOptions, type RefusalReason } from '../limits/index.ts';
import { readProxyHeader, TrustedProxies } from './proxy-protocol.ts';
import { acceptTls, serverSecureContext } from './tls-context.ts';
import { ControlConnection } from './connection.ts';
import { buildCommandTable } from './commands/index.ts';
import { PassivePortPool, type PortRange } from './data/passive-ports.ts';
import type { Authenticator, CommandSpec, FtpSession, LoginResult, SessionHost, SessionLimits } from './session-types.ts';

export type { Authenticator, LoginResult, SessionLimits } from './session-types.ts';

export interface FtpServerOptions extends Partial<SessionLimits> {
  host?: string;
  port?: number;
  pasvPorts?: PortRange | null;
  /** Address announced in PASV replies (for NAT); defaults to the control connection's local address. */
  publicHost?: string | null;
  tls?: SecureContextOptions | null;
  /** A second listener speaking TLS from the first byte (implicit FTPS, usually 990); needs `tls`. */
  implicitTlsPort?: number | null;
  /** Refuse USER/PASS (530) until the control connection is TLS (AUTH TLS or implicit). */
  requireTls?: boolean;
  /**
   * Refuse (425) a PROT P data connection that does not resume the TLS session of its control
   * connection (vsftpd's require_ssl_reuse): proves the data connection comes from the same client.
   */
  requireTlsSessionReuse?: boolean;
  /** Connection caps, login-failure delay and bans (src/limits); default none (NO_LIMITS). */
  access?: AccessLimiter | LimitsOptions;
  /** PROXY protocol v1/v2 on both control listeners: a header is required on every connection. */
  proxyProtocol?: ProxyProtocolOptions | null;
  authenticate?: Authenticator;
  blacklist?: string[];
  whitelist?: string[];
  greeting?: string;
  commands?: Map<string, CommandSpec>;
}

/**
 * Emitted as 'refused' for every connection or login turned away by a limit or the PROXY protocol
 * (for logs and metrics; the address is the real client's where known, else the socket peer's).
 * 'banned' ({ address, username }) is emitted when a failed login bans an address.
 */
export interface RefusedEvent {
  address: string;
  reason: RefusalReason | 'proxy_untrusted' | 'proxy_header';
  detail: string;
}

export interface ProxyProtocolOptions {
  /** Addresses or CIDR blocks allowed to send a header (empty: any source); others are closed. */
  trustedProxies?: string[];
  /** A connection whose header is not complete by then is closed (default 5000). */
  headerTimeoutMs?: number;
}

const DEFAULT_LIMITS: SessionLimits = {
  idleTimeoutMs: 300_000,
  dataConnectTimeoutMs: 15_000,
  unusedDataTimeoutMs: 30_000,
  stallTimeoutMs: 120_000,
  maxLineBytes: 8192,
  maxQueuedCommands: 64,
  maxLoginFailures: 3,
  loginTimeoutMs: 60_000,
  maxConnections: 10_000,
  tlsHandshakeTimeoutMs: 10_000,
};

export class FtpServer extends EventEmitter implements SessionHost {
  /** The plain-FTP control listener. */
  readonly server: Server;
  readonly limits: Readonly<SessionLimits>;
  readonly commands: Map<string, CommandSpec>;
  readonly blacklist: ReadonlySet<string>;
  readonly whitelist: ReadonlySet<string>;
  readonly passivePorts: PassivePortPool;
  readonly publicHost: string | null;
  readonly secureContext: SecureContext | null;
  readonly sessions = new Map<string, ControlConnection>();
  readonly access: AccessLimiter;
  readonly requireTls: boolean;
  readonly requireTlsSessionReuse: boolean;
  readonly #implicitServer: Server | null = null;
  readonly #implicitPort: number;
  readonly #proxy: { trusted: TrustedProxies; headerTimeoutMs: number } | null;
  /** Accepted sockets still waiting for their PROXY header (closed by close()). */
  readonly #pending = new Set<Socket>();
  readonly #authenticator: Authenticator | undefined;
  readonly #host: string;
  readonly #port: number;
  readonly #greeting: string;
  #closing = false;
  #closed: Promise<void> = Promise.resolve();

  constructor(options: FtpServerOptions = {}) {
    super();
    this.server = createServer({ pauseOnConnect: true }, (socket) => this.#accept(socket, false));
    this.server.on('error', (error) => this.emit('server-error', { error }));

    this.limits = Object.freeze({ ...DEFAULT_LIMITS, ...definedOnly(options) });
    this.commands = options.commands ?? buildCommandTable();
    this.blacklist = new Set((options.blacklist ?? []).map((verb) => verb.toUpperCase()));
    this.whitelist = new Set((options.whitelist ?? []).map((verb) => verb.toUpperCase()));
    this.passivePorts = new PassivePortPool(options.pasvPorts ?? null);
    this.publicHost = options.publicHost ?? null;
    this.secureContext = options.tls ? serverSecureContext(options.tls) : null;
    this.access = options.access instanceof AccessLimiter ? options.access : new AccessLimiter(options.access ?? NO_LIMITS);
    this.requireTls = options.requireTls === true;
    if (this.requireTls && !this.secureContext) throw new DropftpError('DROPFTP_ERR_CONFIG', 'requireTls: needs a TLS certificate and key');
    this.requireTlsSessionReuse = options.requireTlsSessionReuse === true;
    this.#implicitPort = options.implicitTlsPort ?? -1;
    if (options.implicitTlsPort !== undefined && options.implicitTlsPort !== null) {
      if (!this.secureContext) throw new DropftpError('DROPFTP_ERR_CONFIG', 'implicitTlsPort: needs a TLS certificate and key');
      if (!Number.isInteger(options.implicitTlsPort) || options.implicitTlsPort < 0 || options.implicitTlsPort > 65535) {
        throw new DropftpError('DROPFTP_ERR_CONFIG', `implicitTlsPort: expected a port number, got ${String(options.implicitTlsPort)}`);
      }
      this.#implicitServer = createServer({ pauseOnConnect: true }, (socket) => this.#accept(socket, true));
      this.#implicitServer.on('error', (error) => this.emit('server-error', { error }));
    }
    if (options.proxyProtocol) {
      const headerTimeoutMs = options.proxyProtocol.headerTimeoutMs ?? 5000;
      if (!(Number.isInteger(headerTimeoutMs) && headerTimeoutMs > 0)) throw new DropftpError('DROPFTP_ERR_CONFIG', 'proxyProtocol.headerTimeoutMs: expected an integer > 0');
      let trusted: TrustedProxies;
      try {
        trusted = new TrustedProxies(options.proxyProtocol.trustedProxies ?? []);
      } catch (err) {
        throw new DropftpError('DROPFTP_ERR_CONFIG', `proxyProtocol.trustedProxies: ${(err as Error).message}`);
      }
      this.#proxy = { trusted, headerTimeoutMs };
    } else {
      this.#proxy = null;
    }
    this.#authenticator = options.authenticate;
    this.#host = options.host ?? '0.0.0.0';
    this.#port = options.port ?? 2121;
    this.#greeting = options.greeting ?? 'dropftp ready';
  }

  get connectionCount(): number {
    return this.sessions.size;
  }

  get listening(): boolean {
    return this.server.listening;
  }

  async listen(): Promise<AddressInfo> {
    await listenOn(this.server, this.#port, this.#host, 'port');
    if (this.#implicitServer) await listenOn(this.#implicitServer, this.#implicitPort, this.#host, 'implicitTlsPort');
    return this.server.address() as AddressInfo;
  }

  get address(): AddressInfo | null {
    return this.server.address() as AddressInfo | null;
  }

  /** The implicit-FTPS listener's address, when there is one. */
  get implicitTlsAddress(): AddressInfo | null {
    return (this.#implicitServer?.address() as AddressInfo | null | undefined) ?? null;
  }

  /** Stops accepting on every listener now (running sessions go on; close() ends them). */
  stopListening(): void {
    for (const server of [this.server, this.#implicitServer]) if (server?.listening) server.close();
  }

  /**
   * Graceful: stops accepting; an idle session gets 421 and closes now, a busy one after its running
   * command (a transfer included) has sent its own final reply. Resolves once every session and
   * listener is closed. destroy() during it aborts what still runs.
   */
  async close(): Promise<void> {
    if (this.#closing) return this.#closed;
    this.#closing = true;
    this.emit('closing');
    const listeners = this.#closeListeners();
    for (const socket of this.#pending) socket.destroy();
    const error = new DropftpError('DROPFTP_ERR_SHUTTING_DOWN');
    const sessions = [...this.sessions.values()].map((session) => session.closeWhenIdle(error.ftpCode, error.clientText));
    this.#closed = Promise.all([listeners, ...sessions]).then(() => void this.emit('closed', {}));
    return this.#closed;
  }

  /**
   * Abortive: stops accepting, aborts every transfer with `err` (nothing half-uploaded is
   * committed), sends each session its reply and destroys its socket at once.
   */
  async destroy(err: DropftpError = new DropftpError('DROPFTP_ERR_SHUTTING_DOWN')): Promise<void> {
    const wasClosing = this.#closing;
    this.#closing = true;
    if (!wasClosing) this.emit('closing');
    const listeners = this.#closeListeners();
    for (const socket of this.#pending) socket.destroy();
    for (const session of this.sessions.values()) session.destroy(err);
    await listeners;
    if (wasClosing) await this.#closed;
    else this.emit('closed', {});
  }

  #closeListeners(): Promise<unknown> {
    return Promise.all([this.server, this.#implicitServer].map((server) => new Promise<void>((resolve) => (server?.listening ? server.close(() => resolve()) : resolve()))));
  }

  /** Runs the authenticator (or 'login' event listeners) so that no failure can escape. */
  async authenticate(session: FtpSession, username: string, password: string): Promise<LoginResult> {
    try {
      if (this.#authenticator) return await this.#authenticator({ username, password, session });
      const listeners = this.listeners('login');
      if (listeners.length === 0) throw new DropftpError('DROPFTP_ERR_LOGIN_FAILED', 'no login handler');
      return await new Promise<LoginResult>((resolve, reject) => {
        for (const listener of listeners) {
          const returned: unknown = listener.call(this, { connection: session, username, password }, resolve, reject);
          if (returned && typeof (returned as PromiseLike<unknown>).then === 'function') {
            (returned as PromiseLike<unknown>).then(undefined, reject);
          }
        }
      });
    } catch (err) {
      this.emit('client-error', { connection: session, context: 'login', error: err });
      if (err instanceof DropftpError && err.code !== 'DROPFTP_ERR_INTERNAL') throw err;
      throw new DropftpError('DROPFTP_ERR_LOGIN_FAILED', 'login handler failed', { cause: err });
    }
  }

  #accept(raw: Socket, implicitTls: boolean): void {
    raw.on('error', () => {});
    if (this.#closing || this.sessions.size + this.#pending.size >= this.limits.maxConnections) {
      const error = this.#closing ? new DropftpError('DROPFTP_ERR_SHUTTING_DOWN') : new DropftpError('DROPFTP_ERR_TOO_MANY_CONNECTIONS');
      // Before a PROXY header or a TLS handshake a reply would be noise to the peer: just close.
      if (this.#proxy || implicitTls) raw.destroy();
      else refuse(raw, `${error.ftpCode} ${error.clientText}`);
      return;
    }
    const proxy = this.#proxy;
    if (!proxy) return this.#admit(raw, implicitTls, raw.remoteAddress ?? '');
    if (!proxy.trusted.has(raw.remoteAddress)) {
      this.emit('refused', { address: raw.remoteAddress ?? '', reason: 'proxy_untrusted', detail: 'PROXY header source not in trustedProxies' } satisfies RefusedEvent);
      raw.destroy();
      return;
    }
    this.#pending.add(raw);
    readProxyHeader(raw, { timeoutMs: proxy.headerTimeoutMs }).then(
      (header) => {
        this.#pending.delete(raw);
        if (this.#closing || raw.destroyed) return void raw.destroy();
        // LOCAL (v2) / UNKNOWN (v1): the trusted proxy's own connection, a health check; it is not
        // a client, so no client limit applies (HAProxy's checks overlap and would trip them).
        if (header.local || !header.sourceAddress) this.#admit(raw, implicitTls, raw.remoteAddress ?? '', false);
        else this.#admit(raw, implicitTls, header.sourceAddress);
      },
      (error: unknown) => {
        this.#pending.delete(raw);
        this.emit('refused', { address: raw.remoteAddress ?? '', reason: 'proxy_header', detail: (error as Error).message } satisfies RefusedEvent);
        raw.destroy();
      },
    );
  }

  /** A connection whose real client address is known: limits, then a session (or a 421). */
  #admit(raw: Socket, implicitTls: boolean, peerAddress: string, limited = true): void {
    const localAddress = raw.localAddress ?? '';
    const socket = implicitTls ? acceptTls(raw, this.secureContext!, this.limits.tlsHandshakeTimeoutMs) : raw;
    let ticket: ConnectionTicket | undefined;
    if (limited) {
      const admission = this.access.connect(peerAddress);
      if (!admission.ok) {
        this.emit('refused', { address: peerAddress, reason: admission.refusal.reason, detail: admission.refusal.reply } satisfies RefusedEvent);
        refuse(socket, admission.refusal.reply);
        return;
      }
      ticket = admission.ticket;
    }
    socket.setNoDelay(true);
    if (this.limits.idleTimeoutMs > 0) socket.setTimeout(this.limits.idleTimeoutMs);
    const session = new ControlConnection(this, socket, ticket ? { peerAddress, localAddress, ticket } : { peerAddress, localAddress });
    if (implicitTls) {
      session.secure = true;
      session.dataProtection = 'P'; // an implicit-FTPS client expects private data unless it says PROT C
    }
    const id = session.id;
    this.sessions.set(id, session);
    socket.once('close', () => {
      ticket?.release();
      this.sessions.delete(id);
      this.emit('disconnect', { connection: session, id, newConnectionCount: this.sessions.size });
    });
    this.emit('connect', { connection: session, id, newConnectionCount: this.sessions.size });
    void session.reply(220, this.#greeting).then(() => socket.resume());
  }
}

/** Sends one reply line, then closes once it is flushed; a peer that never reads is cut after 5 s. */
function refuse(socket: Socket, line: string): void {
  socket.setTimeout(5000, () => socket.destroy());
  socket.write(`${line}\r\n`);
  socket.destroySoon();
}

function listenOn(server: Server, port: number, host: string, option: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(new DropftpError('DROPFTP_ERR_CONFIG', `${option}: listen on ${host}:${port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    // A deep accept queue: thousands of clients may connect in the same instant.
    server.listen({ port, host, backlog: 4096 }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function definedOnly(options: FtpServerOptions): Partial<SessionLimits> {
  const out: Partial<Record<keyof SessionLimits, number>> = {};
  for (const key of Object.keys(DEFAULT_LIMITS) as (keyof SessionLimits)[]) {
    const value = options[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !(value >= 0)) throw new DropftpError('DROPFTP_ERR_CONFIG', `${key}: expected a number >= 0`);
    out[key] = value;
  }
  return out;
}

