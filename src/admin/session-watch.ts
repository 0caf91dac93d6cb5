// What the status page knows about each FTP session beyond the session object itself, observed from
// outside the FTP layer: when it connected (the server's 'connect' event), the command it runs (a
// wrapper around each command handler, like lifecycle/transfer-watch.ts), the file a transfer moves
// (a Proxy around the session's file system: the client path and, for RETR, the size stat gave).
// Main thread. Invariants: the wrapped handlers and file system behave exactly like the originals;
// a PASS argument is never kept (shown as `PASS ****`); entries go with the session's 'disconnect'.

import type { SessionFs } from '../ftp/fs/types.ts';
import type { CommandSpec } from '../ftp/commands/types.ts';

/** The fields of an FTP session (src/ftp/connection.ts FtpSession) the status page reads. */
export interface SessionLike {
  readonly id: string;
  readonly username?: string | undefined;
  readonly authenticated?: boolean | undefined;
  readonly controlPeerAddress: string;
  readonly secure: boolean;
  readonly dataProtection: 'C' | 'P';
  readonly transfer: { readonly directive: string; readonly bytes: number } | null;
}

export interface CommandSeen {
  verb: string;
  /** The command line as the page shows it (PASS hidden, long arguments cut). */
  shown: string;
  startedAtMs: number;
  /** startedAtMs as ISO 8601, formatted once by the model when the page first shows it (status-model.ts owns it). */
  startedAt?: string;
}

/** The file a running RETR/STOR/APPE/STOU moves, with the progress samples the page's rate needs. */
export interface FileSeen {
  path: string;
  direction: 'download' | 'upload';
  /** Bytes this transfer will move when known (RETR: size at stat minus the REST offset). */
  sizeBytes: number | null;
  startedAtMs: number;
  /** startedAtMs as ISO 8601 (formatted once, not on every refresh). */
  startedAt: string;
  lastBytes: number;
  lastProgressAtMs: number;
  sampleBytes: number;
  sampleAtMs: number;
  rateBytesPerSec: number;
  /** The model's JSON of this transfer's fixed fields (status-model.ts owns it). */
  fixedJson?: string;
}

export interface SessionEntry {
  /** The session itself (from the server's 'connect' event), for the transfers' live byte counts. */
  session: SessionLike | null;
  connectedAtMs: number;
  /** Bumped whenever `running` or `last` changes (the model's cached JSON of this row goes stale). */
  version: number;
  /** Where the model's JSON of this session's row lies and what it was built from (status-model.ts owns it). */
  cached: SessionRowCache | null;
  /** Commands running now, oldest first (a transfer, plus ABOR/STAT/NOOP answered during it). */
  running: CommandSeen[];
  last: CommandSeen | null;
  file: FileSeen | null;
}

/**
 * A session's row as the model last serialised it: bytes [start, end) of the model's sessions segment
 * number `segment` (offsets, not a view: a stale entry pins no old buffer), valid while the entry's
 * version and the session fields it was built from are unchanged.
 */
export interface SessionRowCache {
  version: number;
  user: string | null;
  secure: boolean;
  dataProtection: string;
  /** The row's JSON text that never changes (id, client, since), serialised once. */
  fixed: { head: string; middle: string; ascii: boolean };
  segment: number;
  start: number;
  end: number;
}

const FILE_VERBS: ReadonlySet<string> = new Set(['RETR', 'STOR', 'APPE', 'STOU']);
const MAX_SHOWN_CHARS = 200;

/** The command line as the page shows it; a password never leaves this function. */
export function shownCommand(verb: string, arg: string): string {
  if (verb === 'PASS' || verb === 'ACCT') return `${verb} ****`;
  const text = arg ? `${verb} ${arg}` : verb;
  return text.length > MAX_SHOWN_CHARS ? `${text.slice(0, MAX_SHOWN_CHARS)}…` : text;
}

export class SessionWatch {
  readonly #entries = new Map<string, SessionEntry>();
  /** Sessions whose file transfer runs now (id → entry): the page walks these, not every session. */
  readonly moving = new Map<string, SessionEntry>();
  #generation = 0;
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  entry(id: string): SessionEntry | undefined {
    return this.#entries.get(id);
  }

  /** Changes whenever a session comes, goes, or starts or ends a command (the sessions list is stale). */
  get generation(): number {
    return this.#generation;
  }

  connected(id: string, session: SessionLike | null = null): void {
    this.#entries.set(id, { session, connectedAtMs: this.#now(), version: 0, cached: null, running: [], last: null, file: null });
    this.#generation++;
  }

  disconnected(id: string): void {
    this.#entries.delete(id);
    this.moving.delete(id);
    this.#generation++;
  }

  /** Listens to an FTP server's connect/disconnect events; returns the remover. */
  attach(ftp: { on(event: string, listener: (...args: any[]) => void): unknown; off(event: string, listener: (...args: any[]) => void): unknown }): () => void {
    const onConnect = ({ id, connection }: { id: string; connection: SessionLike }): void => this.connected(id, connection);
    const onDisconnect = ({ id }: { id: string }): void => this.disconnected(id);
    ftp.on('connect', onConnect);
    ftp.on('disconnect', onDisconnect);
    return () => {
      ftp.off('connect', onConnect);
      ftp.off('disconnect', onDisconnect);
    };
  }

  commandStarted(id: string, verb: string, arg: string): CommandSeen | null {
    const entry = this.#entries.get(id);
    if (!entry) return null;
    const seen: CommandSeen = { verb, shown: shownCommand(verb, arg), startedAtMs: this.#now() };
    entry.running.push(seen);
    entry.version++;
    this.#generation++;
    return seen;
  }

  commandEnded(id: string, seen: CommandSeen | null): void {
    const entry = this.#entries.get(id);
    if (!entry || !seen) return;
    const at = entry.running.indexOf(seen);
    if (at !== -1) entry.running.splice(at, 1);
    entry.last = seen;
    entry.version++;
    this.#generation++;
    if (FILE_VERBS.has(seen.verb)) {
      entry.file = null;
      this.moving.delete(id);
    }
  }

  /** A file transfer's data is about to move (called by the observed file system). */
  fileOpened(id: string, path: string, direction: FileSeen['direction'], sizeBytes: number | null): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    const now = this.#now();
    entry.file = { path, direction, sizeBytes, startedAtMs: now, startedAt: new Date(now).toISOString(), lastBytes: 0, lastProgressAtMs: now, sampleBytes: 0, sampleAtMs: now, rateBytesPerSec: 0 };
    this.moving.set(id, entry);
  }

  /** A copy of the command table whose every handler reports start and end here (aliases share one wrapper). */
  wrap(commands: Map<string, CommandSpec>): Map<string, CommandSpec> {
    const wrapped = new Map<CommandSpec, CommandSpec>();
    const out = new Map<string, CommandSpec>();
    for (const [verb, spec] of commands) {
      let next = wrapped.get(spec);
      if (!next) {
        next = {
          ...spec,
          handler: async (session, command) => {
            const seen = this.commandStarted(session.id, spec.name, command.arg);
            try {
              await spec.handler(session, command);
            } finally {
              this.commandEnded(session.id, seen);
            }
          },
        };
        wrapped.set(spec, next);
      }
      out.set(verb, next);
    }
    return out;
  }

  /**
   * The session's file system, observed: openRead/openWrite name the client path of the transfer,
   * and the size of the last stat of that path (RETR stats before it opens) makes the percentage.
   */
  observeFs(fs: SessionFs, sessionId: string): SessionFs {
    let lastStat: { path: string; size: number } | null = null;
    return new Proxy(fs, {
      get: (target, property) => {
        if (property === 'stat') {
          return async (...args: Parameters<SessionFs['stat']>) => {
            const info = await target.stat(...args);
            lastStat = info.isDirectory ? null : { path: args[0], size: info.size };
            return info;
          };
        }
        if (property === 'openRead') {
          return async (...args: Parameters<SessionFs['openRead']>) => {
            const [path, { offset }] = args;
            const stream = await target.openRead(...args);
            const size = lastStat && lastStat.path === path ? Math.max(0, lastStat.size - offset) : null;
            this.fileOpened(sessionId, path, 'download', size);
            return stream;
          };
        }
        if (property === 'openWrite') {
          return async (...args: Parameters<SessionFs['openWrite']>) => {
            const sink = await target.openWrite(...args);
            this.fileOpened(sessionId, args[0], 'upload', null);
            return sink;
          };
        }
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  }
}
