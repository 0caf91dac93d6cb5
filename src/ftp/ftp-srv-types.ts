// Our own typings for the parts of ftp-srv 4.6.3 we build on (its bundled .d.ts is wrong in places:
// see shared/reference/ftp-srv.md A.11). Main thread. Loads the CommonJS modules once; nothing here
// changes ftp-srv's behaviour — the subclasses in server.ts and connection.ts do.

import { createRequire } from 'node:module';
import type { EventEmitter } from 'node:events';
import type { Server, Socket } from 'node:net';

const require = createRequire(import.meta.url);

/** A bunyan-shaped logger: ftp-srv calls child() and the level methods. */
export interface FtpSrvLogger {
  child(fields: Record<string, unknown>): FtpSrvLogger;
  trace(...args: unknown[]): void;
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

export interface FtpSrvOptions {
  url: string;
  log: FtpSrvLogger;
  pasv_url?: string | null;
  pasv_min?: number;
  pasv_max?: number;
  anonymous?: boolean | string;
  blacklist?: string[];
  whitelist?: string[];
  greeting?: string | string[] | null;
  tls?: false | Record<string, unknown>;
  timeout?: number;
}

/** The instance shape of ftp-srv's FtpServer (src/index.js). */
export interface FtpSrvBase extends EventEmitter {
  options: FtpSrvOptions & Record<string, unknown>;
  server: Server;
  connections: Record<string, unknown>;
  log: FtpSrvLogger;
  readonly isTLS: boolean;
  listen(): PromiseLike<unknown>;
  close(): PromiseLike<unknown>;
  disconnectClient(id: string): PromiseLike<unknown>;
  emitPromise(action: string, ...data: unknown[]): PromiseLike<unknown>;
}

/** The instance shape of ftp-srv's FtpConnection (src/connection.js). */
export interface FtpConnectionBase extends EventEmitter {
  id: string;
  server: FtpSrvBase;
  commandSocket: Socket;
  log: FtpSrvLogger;
  transferType: 'binary' | 'ascii';
  encoding: BufferEncoding;
  bufferSize: number | false;
  restByteCount: number | undefined;
  secure: boolean;
  username?: string;
  authenticated?: boolean;
  connector: { end(): void };
  readonly ip: string | undefined;
  close(code?: number, message?: string): PromiseLike<unknown>;
  reply(options: number | ReplyOptions, ...letters: ReplyLetter[]): Promise<void>;
}

export interface ReplyOptions {
  code?: number;
  socket?: Socket;
  eol?: boolean;
  useEmptyMessage?: boolean;
}

export type ReplyLetter = string | number | undefined | null | { message?: string | number; raw?: boolean };

/** One entry of ftp-srv's command registry (src/commands/registry.js). */
export interface FtpSrvCommandSpec {
  directive: string | string[];
  handler: (this: FtpConnectionBase, args: { log: FtpSrvLogger; command: { directive: string; arg: string | null; flags: string[]; raw: string } }) => unknown;
  syntax: string;
  description: string;
  flags?: { no_auth?: boolean; feat?: string; obsolete?: boolean };
}

export const FtpSrv = require('ftp-srv') as new (options: FtpSrvOptions) => FtpSrvBase;
export const FtpConnection = require('ftp-srv/src/connection.js') as new (
  server: FtpSrvBase,
  options: { log: FtpSrvLogger; socket: Socket },
) => FtpConnectionBase;
export const FTP_SRV_REGISTRY = require('ftp-srv/src/commands/registry.js') as Record<string, FtpSrvCommandSpec>;
export const FTP_SRV_MESSAGES = require('ftp-srv/src/messages.js') as Record<number, string>;

/** A logger that drops everything (ftp-srv's default creates a bunyan logger writing to stdout). */
export const silentLogger: FtpSrvLogger = {
  child: () => silentLogger,
  trace: () => {},
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};
