// The shapes the FTP layer's parts share: a session as command handlers see it, the server as a
// session sees it, a command spec, the session limits, the login contract. Main thread (types
// only). Invariant: imports nothing of src/ftp that imports back (the dependency runs server →
// commands → session → these types; see test/layout/no-cycles.test.ts).

import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { DropftpError } from '../errors.ts';
import type { DataConnector } from './data/connector.ts';
import type { PassivePortPool } from './data/passive-ports.ts';
import type { SessionFs } from './fs/types.ts';

export interface SessionLimits {
  /** Control connection idle time before 421 (0: never). Never counted during a transfer. */
  idleTimeoutMs: number;
  /** How long a transfer command waits for its data connection. */
  dataConnectTimeoutMs: number;
  /** A passive listener or data socket no transfer claims is closed after this. */
  unusedDataTimeoutMs: number;
  /** A transfer whose data socket moves no byte for this long is aborted (426). */
  stallTimeoutMs: number;
  maxLineBytes: number;
  maxQueuedCommands: number;
  /** Failed PASS attempts before the connection is closed. */
  maxLoginFailures: number;
  /**
   * A connection not logged in this long after it was accepted is closed (421; 0: never). The idle
   * timeout alone let a client that never logs in hold its slot for ever by sending a byte now and
   * then, or NOOP.
   */
  loginTimeoutMs: number;
  maxConnections: number;
  /** A TLS handshake (AUTH TLS, implicit FTPS) not finished by then closes the connection. */
  tlsHandshakeTimeoutMs: number;
}

export interface LoginResult {
  fs: SessionFs;
  /** Verbs refused to this user, on top of the server's blacklist. */
  blacklist?: string[];
}

export type Authenticator = (login: { username: string; password: string; session: FtpSession }) => Promise<LoginResult>;

/** One parsed command line. */
export interface Command {
  /** Upper-cased verb as sent (an alias such as XMKD stays XMKD). */
  directive: string;
  /** Everything after the first space, verbatim ('' when none). */
  arg: string;
  /** The line was longer than limits.maxLineBytes (its bytes were discarded; directive and arg are ''). */
  tooLong?: true;
}

export interface CommandSpec {
  /** Canonical verb; aliases (XMKD for MKD …) resolve to the same spec. */
  name: string;
  aliases?: readonly string[];
  /** Verbs whose blacklisting also blocks this one (APPE and STOU write like STOR). */
  guardedBy?: readonly string[];
  /** Allowed before login. */
  noAuth?: boolean;
  /** May run while a transfer is in progress (RFC 959 4.1.3: ABOR, STAT, QUIT; and NOOP). */
  urgent?: boolean;
  /** Advertised in FEAT (one line each). */
  feat?: readonly string[];
  syntax: string;
  description: string;
  handler(session: FtpSession, command: Command): Promise<void> | void;
}

/** A running data transfer (RETR, STOR, LIST …) that ABOR, QUIT or a closing socket can stop. */
export interface ActiveTransfer {
  readonly directive: string;
  bytes: number;
  /** Stops the transfer; its handler sends the 426 and then settles `done`. */
  abort(err: DropftpError): void;
  readonly done: Promise<void>;
}

/** One line of a reply: text, or raw text sent without the code (multi-line bodies). */
export type ReplyLine = string | number | undefined | null | { message?: string | number; raw?: boolean };

export interface ReplyOptions {
  code?: number;
  /** Where the reply goes (default: the control connection). */
  socket?: Socket;
  eol?: boolean;
  useEmptyMessage?: boolean;
}

/** RFC 3659 7.5 facts dropftp can give; OPTS MLST selects a subset (7.9). */
export const MLST_FACTS = ['type', 'size', 'modify', 'perm', 'unique'] as const;
export type MlstFact = (typeof MLST_FACTS)[number];

/** What a session needs of its server: limits, the command table, TLS, login, events. */
export interface SessionHost {
  readonly limits: Readonly<SessionLimits>;
  readonly commands: ReadonlyMap<string, CommandSpec>;
  readonly blacklist: ReadonlySet<string>;
  readonly whitelist: ReadonlySet<string>;
  readonly passivePorts: PassivePortPool;
  /** Address announced in PASV replies to clients outside loopback (NAT), or null. */
  readonly publicHost: string | null;
  readonly secureContext: SecureContext | null;
  readonly requireTls: boolean;
  readonly requireTlsSessionReuse: boolean;
  /** Runs the login check; rejects with a DropftpError only. */
  authenticate(session: FtpSession, username: string, password: string): Promise<LoginResult>;
  emit(event: string | symbol, ...args: unknown[]): boolean;
}

/** One FTP control connection as command handlers, logs and watchers see it. */
export interface FtpSession extends EventEmitter {
  readonly id: string;
  readonly server: SessionHost;
  /** The control socket (replaced by the TLS socket after AUTH TLS). */
  commandSocket: Socket;
  readonly connector: DataConnector;
  files: SessionFs | null;
  transfer: ActiveTransfer | null;
  renameFrom: string | null;
  /** RFC 4217 PROT: 'P' makes data connections TLS. */
  dataProtection: 'C' | 'P';
  /** RFC 959 TYPE: 'ascii' converts line ends on the wire; 'binary' (I, L 8) moves bytes as they are. */
  transferType: 'binary' | 'ascii';
  /** RFC 4217 PBSZ (always 0 once set). */
  bufferSize: number | false;
  failedLogins: number;
  /** After EPSV ALL (RFC 2428 4) only EPSV may set up data connections. */
  epsvAll: boolean;
  /** QUIT was received: a transfer still running finishes, even if the connection closes first. */
  quitting: boolean;
  /**
   * The path whose last SIZE answered a kept upload's offset (an interrupted STOR's session): an
   * APPE of it continues that session (curl -C -: SIZE, then APPE); any other APPE appends to the file.
   */
  keptSizeOffered: string | null;
  lastDataSetup: 'PASV' | 'EPSV' | 'PORT' | 'EPRT' | '';
  /** The MLST/MLSD facts selected by OPTS MLST (all by default). */
  mlstFacts: ReadonlySet<MlstFact>;
  secure: boolean;
  username: string | undefined;
  authenticated: boolean;
  /** Addresses of the control connection; the peer is the real client (PROXY header) when known. */
  readonly controlLocalAddress: string;
  readonly controlPeerAddress: string;
  readonly isClosed: boolean;
  /** The one place a data connector is replaced: the previous one is closed first. */
  setConnector(next: DataConnector): void;
  closeConnector(): void;
  /** Drops the command lines received after the one running (AUTH TLS: nothing sent in the clear runs over TLS). */
  discardPendingInput(): void;
  /** Sets the REST offset for the next RETR/STOR. */
  setRestOffset(offset: number): void;
  /** The REST offset for this RETR/STOR, consumed by the call. */
  takeRestOffset(): number;
  /** Logs in (any previous login of the session is dropped first); rejects with a DropftpError. */
  login(username: string, password: string): Promise<void>;
  /** Drops the session's login: back to the state after the greeting. */
  logout(): void;
  reply(options: number | ReplyOptions, ...lines: ReplyLine[]): Promise<void>;
  /** Replies with the error's registry code and text (plus a detail of ours, never a server path). */
  replyError(error: DropftpError): Promise<void>;
  /** Replies (unless code is 0), then ends the control connection once the reply is flushed. */
  close(code?: number, message?: string): Promise<void>;
}
