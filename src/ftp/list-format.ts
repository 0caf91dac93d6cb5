// Text formats of directory listings: LIST (ls -l style), NLST, MLSD/MLST facts (RFC 3659 7), and
// MDTM times. Main thread, pure functions. Invariant: a whole listing becomes one Buffer, written
// to the data socket at once (ftp-srv awaited one write per entry).

import type { FileInfo } from './fs/types.ts';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const SIX_MONTHS_MS = 182 * 24 * 3600 * 1000;

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** `-rw-r--r-- 1 ftp ftp         1234 Jan 02 15:04 name` (or `Jan 02  2020` when older). */
export function lsLine(info: FileInfo, nowMs: number): string {
  const t = info.mtime;
  const recent = Math.abs(nowMs - t.getTime()) < SIX_MONTHS_MS;
  const when = recent ? `${pad2(t.getUTCHours())}:${pad2(t.getUTCMinutes())}` : ` ${t.getUTCFullYear()}`;
  const mode = info.isDirectory ? 'drwxr-xr-x' : '-rw-r--r--';
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

/** RFC 3659 facts: type, size, modify, perm, unique. */
export function mlsxFacts(info: FileInfo, type?: 'cdir'): string {
  const facts = info.isDirectory
    ? `type=${type ?? 'dir'};modify=${ftpTime(info.mtime)};perm=flcdmpe;unique=${uniqueFact(info.id)};`
    : `type=file;size=${info.size};modify=${ftpTime(info.mtime)};perm=adfrw;unique=${uniqueFact(info.id)};`;
  return facts;
}

/** unique must not contain ';' or spaces; Dropbox ids are "id:XXXX". */
function uniqueFact(id: string): string {
  return id.replace(/[^A-Za-z0-9_-]/g, '') || '0';
}

export function renderListing(entries: FileInfo[], format: 'LIST' | 'NLST' | 'MLSD', nowMs = Date.now()): Buffer {
  let text = '';
  for (const entry of entries) {
    if (format === 'NLST') text += entry.name;
    else if (format === 'MLSD') text += `${mlsxFacts(entry)} ${entry.name}`;
    else text += lsLine(entry, nowMs);
    text += '\r\n';
  }
  return Buffer.from(text, 'utf8');
}
