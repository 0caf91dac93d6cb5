// The `sessions` list of /status.json as UTF-8 bytes, rebuilt only when the session watch's
// generation moves, and then incrementally: rows whose session did not change are copied from the
// previous list (a run of neighbours in one copy), only changed rows are serialised. Main thread.
// Invariants: the bytes equal the list built from scratch (test/status/rows.test.ts, random changes);
// a list, once returned, is never written again (a response being sent may still hold it).

import type { SessionEntry, SessionLike, SessionRowCache, SessionWatch } from './session-watch.ts';

export interface SessionsSegment {
  /** The watch's generation this list was built at. */
  generation: number;
  /** Its number: row caches built for another list (or another SessionRows) never match. */
  id: number;
  /** The rows, comma-separated, without the brackets. */
  bytes: Buffer;
  total: number;
  loggedIn: number;
}

const COMMA = 0x2c;
/** Process-wide, so that two models sharing one watch (tests) never take each other's rows. */
let segmentCount = 0;

export const isoTime = (ms: number): string => new Date(ms).toISOString();
/** Text that JSON.stringify would only wrap in quotes (no quote, backslash, control or surrogate code unit). */
const PLAIN = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;
/** JSON.stringify of a string or null, without its per-call cost for the common plain text. */
export const jsonString = (value: string | null | undefined): string => (value === null || value === undefined ? 'null' : PLAIN.test(value) ? `"${value}"` : JSON.stringify(value));
const str = jsonString;

/** JSON text of plain printable ASCII (no quote, backslash or control): one byte per character. */
const ASCII_PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const ASCII = /^[\x00-\x7f]*$/;
/** `"value"` (or `null`) when that is its JSON and all ASCII; undefined otherwise. */
const asciiJson = (value: string | null | undefined): string | undefined => (value === null || value === undefined ? 'null' : ASCII_PLAIN.test(value) ? `"${value}"` : undefined);

/** The parts of a session's row that never change: before its user, and between user and command. */
interface RowFixed {
  head: string;
  middle: string;
  ascii: boolean;
}

function sessionRowFixed(session: SessionLike, entry: SessionEntry | undefined): RowFixed {
  const head = `{"id":${str(session.id)},"user":`;
  const middle = `,"client":${str(session.controlPeerAddress)},"since":${entry ? `"${isoTime(entry.connectedAtMs)}"` : 'null'},"command":`;
  return { head, middle, ascii: ASCII.test(head) && ASCII.test(middle) };
}

/** One session's row (durations are left to the page: the row stays cacheable); ASCII when `ascii` says so. */
function sessionRowJson(session: SessionLike, entry: SessionEntry | undefined, user: string | null, fixed: RowFixed): { text: string; ascii: boolean } {
  const running = entry?.running[0] ?? null;
  const commandSince = running ? `"${(running.startedAt ??= isoTime(running.startedAtMs))}"` : 'null';
  const [u, c, l] = [asciiJson(user), asciiJson(running?.shown), asciiJson(entry?.last?.shown)];
  const text = `${fixed.head}${u ?? str(user)}${fixed.middle}${c ?? str(running?.shown)},"commandSince":${commandSince},"lastCommand":${l ?? str(entry?.last?.shown)},"tls":${session.secure === true},"dataTls":${session.dataProtection === 'P'}}`;
  return { text, ascii: fixed.ascii && u !== undefined && c !== undefined && l !== undefined };
}

export class SessionRows {
  #segment: SessionsSegment | null = null;
  // Scratch of one rebuild (kept to spare the allocation): each listed row, its new text or null,
  // and whether that text is ASCII (its length is its byte length; written as latin1, no encoding).
  readonly #rows: SessionRowCache[] = [];
  readonly #texts: (string | null)[] = [];
  readonly #ascii: boolean[] = [];

  /** The list for the sessions now; `sessions` is only walked when the watch's generation moved. */
  build(sessions: () => Iterable<SessionLike>, watch: SessionWatch, maxListed: number): SessionsSegment {
    const generation = watch.generation;
    const old = this.#segment;
    if (old && old.generation === generation) return old;
    const rows = this.#rows;
    const texts = this.#texts;
    const asciiTexts = this.#ascii;
    let byteLength = 0;
    let total = 0;
    let loggedIn = 0;
    // Pass 1: which rows are reused (their bytes in the old list), which are serialised anew (their
    // byte length is kept in `end` until pass 2 places them).
    for (const session of sessions()) {
      total++;
      if (session.authenticated) loggedIn++;
      if (total > maxListed) continue;
      const entry = watch.entry(session.id);
      const user = session.authenticated ? (session.username ?? null) : null;
      const cached = entry?.cached ?? null;
      if (cached !== null && old !== null && cached.segment === old.id && cached.version === entry!.version && cached.user === user && cached.secure === session.secure && cached.dataProtection === session.dataProtection) {
        rows.push(cached);
        texts.push(null);
        asciiTexts.push(false);
        byteLength += cached.end - cached.start;
        continue;
      }
      const fixed = cached?.fixed ?? sessionRowFixed(session, entry);
      const { text, ascii } = sessionRowJson(session, entry, user, fixed);
      const row: SessionRowCache = { version: entry?.version ?? 0, user, secure: session.secure, dataProtection: session.dataProtection, fixed, segment: 0, start: 0, end: ascii ? text.length : Buffer.byteLength(text) };
      if (entry) entry.cached = row;
      rows.push(row);
      texts.push(text);
      asciiTexts.push(ascii);
      byteLength += row.end;
    }
    // Pass 2: lay the rows out in a new buffer; a run of reused rows that were neighbours in the old
    // list (commas included) is one copy.
    const count = rows.length;
    const out = Buffer.allocUnsafe(byteLength + Math.max(0, count - 1));
    const id = ++segmentCount;
    let at = 0;
    let runFrom = -1;
    let runTo = -1;
    for (let i = 0; i < count; i++) {
      const row = rows[i]!;
      const text = texts[i];
      if (text === null) {
        const [oldStart, oldEnd] = [row.start, row.end];
        if (runFrom === -1 || oldStart !== runTo + 1) {
          if (runFrom !== -1) at += old!.bytes.copy(out, at, runFrom, runTo);
          if (i > 0) out[at++] = COMMA;
          runFrom = oldStart;
        }
        runTo = oldEnd;
        row.start = at + (oldStart - runFrom);
        row.end = row.start + (oldEnd - oldStart);
      } else {
        if (runFrom !== -1) at += old!.bytes.copy(out, at, runFrom, runTo);
        runFrom = -1;
        if (i > 0) out[at++] = COMMA;
        row.start = at;
        at += out.write(text!, at, row.end, asciiTexts[i] ? 'latin1' : 'utf8');
        row.end = at;
      }
      row.segment = id;
    }
    if (runFrom !== -1) at += old!.bytes.copy(out, at, runFrom, runTo);
    rows.length = 0;
    texts.length = 0;
    asciiTexts.length = 0;
    this.#segment = { generation, id, bytes: at === out.length ? out : out.subarray(0, at), total, loggedIn };
    return this.#segment;
  }
}
