// Text formats of directory listings: LIST (ls -l style), NLST, MLSD/MLST facts (RFC 3659 7), and
// MDTM times. Main thread, pure functions. Invariants: a whole listing becomes one Buffer, written
// to the data socket at once; perm facts and ls modes say
// what this user may really do at each entry (a read-only user or mount gets no a/c/d/f/m/p/w);
// a folder whose time is unknown (Dropbox keeps none for folders) shows the listing's own time,
// never 1970.

import type { FileInfo } from './fs/types.ts';
import type { Permission } from '../users/permissions.ts';
import { MLST_FACTS, type MlstFact } from './session-types.ts';

const ALL_FACTS: ReadonlySet<MlstFact> = new Set(MLST_FACTS);

/**
 * The permissions the user holds at one entry, or (`inside`) for a new entry inside that folder;
 * all of them when no check applies.
 */
export type Granted = (permission: Permission, inside?: boolean) => boolean;
export const GRANT_ALL: Granted = () => true;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const SIX_MONTHS_MS = 182 * 24 * 3600 * 1000;

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** `-rw-r--r-- 1 ftp ftp         1234 Jan 02 15:04 name` (or `Jan 02  2020` when older). */
export function lsLine(info: FileInfo, nowMs: number, granted: Granted = GRANT_ALL): string {
  const t = shownTime(info, nowMs);
  const recent = Math.abs(nowMs - t.getTime()) < SIX_MONTHS_MS;
  const when = recent ? `${pad2(t.getUTCHours())}:${pad2(t.getUTCMinutes())}` : ` ${t.getUTCFullYear()}`;
  // The owner bits show this user's write access (clients such as FileZilla grey out what fails).
  const w = granted('write', info.isDirectory) ? 'w' : '-';
  const mode = info.isDirectory ? `dr${w}xr-xr-x` : `-r${w}-r--r--`;
  return `${mode} 1 ftp ftp ${String(info.isDirectory ? 0 : info.size).padStart(12)} ${MONTHS[t.getUTCMonth()]} ${pad2(t.getUTCDate())} ${when} ${info.name}`;
}

/** YYYYMMDDHHMMSS[.sss] in UTC (RFC 3659 2.3). */
export function ftpTime(date: Date): string {
  const base =
    `${date.getUTCFullYear()}${pad2(date.getUTCMonth() + 1)}${pad2(date.getUTCDate())}` +
    `${pad2(date.getUTCHours())}${pad2(date.getUTCMinutes())}${pad2(date.getUTCSeconds())}`;
  const ms = date.getUTCMilliseconds();
  return ms ? `${base}.${String(ms).padStart(3, '0')}` : base;
}

/**
 * The time shown for an entry. Dropbox has no folder times (the fs gives folders the epoch): a
 * folder shows the time of the listing itself, as rclone and most cloud gateways do, so clients
 * see a plausible, never-1970 date; files always show their server_modified time.
 */
export function shownTime(info: FileInfo, nowMs: number): Date {
  return info.isDirectory && info.mtime.getTime() === 0 ? new Date(Math.floor(nowMs / 1000) * 1000) : info.mtime;
}

/**
 * RFC 3659 7.5.5 perm letters from the user's permissions at the entry: files a/w (write),
 * d (delete), f (rename), r (read); folders d (delete), e (always: CWD needs no permission),
 * f (rename), l (list), and, for what lies inside them, c (write), m (mkdir), p (delete).
 */
export function permFact(isDirectory: boolean, granted: Granted): string {
  const letters = isDirectory
    ? [granted('rename') && 'f', granted('list') && 'l', granted('write', true) && 'c', granted('delete') && 'd', granted('mkdir', true) && 'm', granted('delete', true) && 'p', 'e']
    : [granted('write') && 'a', granted('delete') && 'd', granted('rename') && 'f', granted('read') && 'r', granted('write') && 'w'];
  return letters.filter(Boolean).join('');
}

/**
 * RFC 3659 facts: type, size (files only), modify, perm, unique — only those in `facts` (the
 * session's OPTS MLST selection, RFC 3659 7.9; default all).
 */
export function mlsxFacts(info: FileInfo, options: { type?: 'cdir'; granted?: Granted; nowMs?: number; facts?: ReadonlySet<MlstFact> } = {}): string {
  const facts = options.facts ?? ALL_FACTS;
  let text = '';
  if (facts.has('type')) text += `type=${info.isDirectory ? (options.type ?? 'dir') : 'file'};`;
  if (facts.has('size') && !info.isDirectory) text += `size=${info.size};`;
  if (facts.has('modify')) text += `modify=${ftpTime(shownTime(info, options.nowMs ?? Date.now()))};`;
  if (facts.has('perm')) text += `perm=${permFact(info.isDirectory, options.granted ?? GRANT_ALL)};`;
  if (facts.has('unique')) text += `unique=${uniqueFact(info.id)};`;
  return text;
}

/** unique must not contain ';' or spaces; Dropbox ids are "id:XXXX". */
function uniqueFact(id: string): string {
  return id.replace(/[^A-Za-z0-9_-]/g, '') || '0';
}

/** `grantedFor(entry)` gives the user's permissions at each entry (default: all). */
export function renderListing(
  entries: FileInfo[],
  format: 'LIST' | 'NLST' | 'MLSD',
  nowMs = Date.now(),
  grantedFor: (entry: FileInfo) => Granted = () => GRANT_ALL,
  facts: ReadonlySet<MlstFact> = ALL_FACTS,
): Buffer {
  let text = '';
  for (const entry of entries) {
    if (format === 'NLST') text += entry.name;
    else if (format === 'MLSD') text += `${mlsxFacts(entry, { granted: grantedFor(entry), nowMs, facts })} ${entry.name}`;
    else text += lsLine(entry, nowMs, grantedFor(entry));
    text += '\r\n';
  }
  return Buffer.from(text, 'utf8');
}
