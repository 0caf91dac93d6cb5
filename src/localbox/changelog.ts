// The per-namespace change log as list_folder cursors: first listing pages (a snapshot position plus
// the last path returned), then `continue` as a change feed with deleted entries, and longpoll
// wake-ups. Runs in the local box child. Invariants: a cursor is opaque (base64url JSON) and names its
// namespace; changes are served in log order; a longpoll waiter is woken after every commit.

import { badRequest } from './api-errors.ts';
import { metadataJson, type EntryRow } from './metadata.ts';
import type { Db } from './store/db.ts';

export interface CursorState {
  v: 1;
  ns: number;
  p: string; // folder path_lower, "" = root
  r: boolean; // recursive
  d: boolean; // include_deleted (listing phase)
  s: number; // change-log position the listing is consistent with
  a?: string; // listing phase: last path_lower returned
  l?: number; // page size asked for by list_folder
}

export interface Page {
  entries: Record<string, unknown>[];
  cursor: string;
  has_more: boolean;
}

const FEED_SCAN_ROWS = 1000;
/** The largest page list_folder's `limit` may ask for (Dropbox's). */
export const MAX_PAGE = 2000;

export function encodeCursor(c: CursorState): string {
  return `AAE${Buffer.from(JSON.stringify(c)).toString('base64url')}`;
}

const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;

/**
 * Every field of a cursor as encodeCursor writes them: a cursor is opaque to clients, but one made up
 * or edited by hand must get the same 400 as a garbled one, not reach the database (a page size of 0
 * answered has_more with no entries for ever; a non-string listing position failed in SQLite).
 */
function validCursor(c: unknown): c is CursorState {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return false;
  const k = c as Record<string, unknown>;
  if (k.v !== 1 || !isCount(k.ns) || !isCount(k.s) || typeof k.p !== 'string') return false;
  if (k.p !== '' && (!k.p.startsWith('/') || k.p.endsWith('/'))) return false;
  if (typeof k.r !== 'boolean' || typeof k.d !== 'boolean') return false;
  if (k.a !== undefined && typeof k.a !== 'string') return false;
  if (k.l !== undefined && !(isCount(k.l) && k.l >= 1 && k.l <= MAX_PAGE)) return false;
  return true;
}

export function decodeCursor(route: string, cursor: string): CursorState {
  try {
    if (!cursor.startsWith('AAE')) throw new Error('prefix');
    const c = JSON.parse(Buffer.from(cursor.slice(3), 'base64url').toString('utf8')) as CursorState;
    if (!validCursor(c)) throw new Error('shape');
    return c;
  } catch {
    throw badRequest(route, 'request body: cursor: Invalid "cursor" parameter');
  }
}

function inScope(c: CursorState, pathLower: string, parentLower: string): boolean {
  if (!c.r) return parentLower === c.p;
  return c.p === '' || pathLower === c.p || pathLower.startsWith(`${c.p}/`);
}

interface Waiter {
  cursor: CursorState;
  resolve: (changes: boolean) => void;
}

function statements(d: Db) {
  return {
    latest: d.prepare('SELECT COALESCE(MAX(seq), 0) AS s FROM changes WHERE ns = ?'),
    since: d.prepare('SELECT seq, path_lower, parent_lower, meta FROM changes WHERE ns = ? AND seq > ? ORDER BY seq LIMIT ?'),
    children: d.prepare('SELECT * FROM entries WHERE ns = ? AND parent_lower = ? AND path_lower > ? ORDER BY path_lower LIMIT ?'),
    subtree: d.prepare(`SELECT * FROM entries WHERE ns = ? AND path_lower > ? AND
      (path_lower = ? OR (path_lower > ? AND path_lower < ?)) ORDER BY path_lower LIMIT ?`),
    all: d.prepare('SELECT * FROM entries WHERE ns = ? AND path_lower > ? ORDER BY path_lower LIMIT ?'),
  };
}

export class ChangeFeed {
  private readonly waiters = new Map<number, Set<Waiter>>();

  constructor(db: Db) {
    this.stmt = statements(db);
  }

  private readonly stmt: ReturnType<typeof statements>;

  latestSeq(ns: number): number {
    return (this.stmt.latest.get(ns) as { s: number }).s;
  }

  /** A cursor positioned past the end of its namespace's log: this box never made it (answered reset). */
  isAhead(c: CursorState): boolean {
    return c.s > this.latestSeq(c.ns);
  }

  /** A fresh cursor positioned at the end of the log (get_latest_cursor). */
  latestCursor(ns: number, p: string, recursive: boolean, includeDeleted: boolean): string {
    return encodeCursor({ v: 1, ns, p, r: recursive, d: includeDeleted, s: this.latestSeq(ns) });
  }

  /** First page of list_folder. */
  start(ns: number, p: string, recursive: boolean, includeDeleted: boolean, limit: number): Page {
    return this.listPage({ v: 1, ns, p, r: recursive, d: includeDeleted, s: this.latestSeq(ns), a: '', l: limit }, limit);
  }

  /** list_folder/continue. */
  next(c: CursorState): Page {
    const limit = c.l ?? MAX_PAGE;
    return c.a !== undefined ? this.listPage(c, limit) : this.feedPage(c, limit);
  }

  private listPage(c: CursorState, limit: number): Page {
    const after = c.a ?? '';
    let rows: EntryRow[];
    if (!c.r) rows = this.stmt.children.all(c.ns, c.p, after, limit + 1) as EntryRow[];
    else if (c.p === '') rows = this.stmt.all.all(c.ns, after, limit + 1) as EntryRow[];
    else rows = this.stmt.subtree.all(c.ns, after === '' ? '' : after, c.p, `${c.p}/`, `${c.p}0`, limit + 1) as EntryRow[];
    const more = rows.length > limit;
    if (more) rows = rows.slice(0, limit);
    const entries = rows.map((r) => metadataJson(r));
    const cursor: CursorState = more ? { ...c, a: rows[rows.length - 1]!.path_lower } : { v: 1, ns: c.ns, p: c.p, r: c.r, d: c.d, s: c.s, l: limit };
    return { entries, cursor: encodeCursor(cursor), has_more: more };
  }

  private feedPage(c: CursorState, limit: number): Page {
    const entries: Record<string, unknown>[] = [];
    let seq = c.s;
    let exhausted = false;
    while (entries.length < limit) {
      const rows = this.stmt.since.all(c.ns, seq, FEED_SCAN_ROWS) as { seq: number; path_lower: string; parent_lower: string; meta: string }[];
      if (rows.length < FEED_SCAN_ROWS) exhausted = true;
      for (const row of rows) {
        if (entries.length >= limit) {
          exhausted = false;
          break;
        }
        seq = row.seq;
        if (inScope(c, row.path_lower, row.parent_lower)) entries.push(JSON.parse(row.meta) as Record<string, unknown>);
      }
      if (exhausted) break;
    }
    return { entries, cursor: encodeCursor({ ...c, s: seq }), has_more: !exhausted };
  }

  /** True if the log holds a change in the cursor's scope after its position. */
  hasChanges(c: CursorState): boolean {
    if (c.a !== undefined) return true;
    let seq = c.s;
    for (;;) {
      const rows = this.stmt.since.all(c.ns, seq, FEED_SCAN_ROWS) as { seq: number; path_lower: string; parent_lower: string }[];
      for (const row of rows) {
        if (inScope(c, row.path_lower, row.parent_lower)) return true;
        seq = row.seq;
      }
      if (rows.length < FEED_SCAN_ROWS) return false;
    }
  }

  /** Resolves true as soon as a change in scope exists, false after `timeoutMs`; `cancel` ends the wait. */
  wait(c: CursorState, timeoutMs: number): { promise: Promise<boolean>; cancel: () => void } {
    let waiter!: Waiter;
    let timer: NodeJS.Timeout;
    const set = this.waiters.get(c.ns) ?? new Set<Waiter>();
    this.waiters.set(c.ns, set);
    const promise = new Promise<boolean>((resolve) => {
      waiter = {
        cursor: c,
        resolve: (changes) => {
          clearTimeout(timer);
          set.delete(waiter);
          resolve(changes);
        },
      };
      timer = setTimeout(() => waiter.resolve(false), timeoutMs);
      set.add(waiter);
    });
    if (this.hasChanges(c)) waiter.resolve(true);
    return { promise, cancel: () => waiter.resolve(false) };
  }

  wake(ns: number): void {
    const set = this.waiters.get(ns);
    if (!set) return;
    for (const w of [...set]) if (this.hasChanges(w.cursor)) w.resolve(true);
  }

  closeAll(): void {
    for (const set of this.waiters.values()) for (const w of [...set]) w.resolve(false);
  }
}
