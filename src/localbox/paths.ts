// Dropbox path arguments (reference §5): "" root, "/a/b", "id:…[/rel]", "rev:…", "ns:<id>[/…]".
// Runs in the local box child. Invariants: keys are lower-cased display paths ("" is the root, every
// other key starts with "/" and has no trailing slash); pattern mismatches are 400s, semantic
// problems (empty components, trailing slash) are the 409 malformed_path of the calling route.

import { badRequest } from './api-errors.ts';

export type PathKind = 'read' | 'write' | 'writeOrId' | 'listing';

export type ParsedPath =
  | { kind: 'path'; display: string } // "" for the root
  | { kind: 'id'; id: string; rest: string } // rest: "" or "/rel/path"
  | { kind: 'rev'; rev: string }
  | { kind: 'malformed' };

const PATTERNS: Record<PathKind, RegExp> = {
  read: /^(?:\/[\s\S]*|id:[\s\S]*|rev:[0-9a-f]{9,}|ns:[0-9]+(?:\/[\s\S]*)?)$/,
  write: /^(?:\/[\s\S]*|ns:[0-9]+(?:\/[\s\S]*)?)$/,
  writeOrId: /^(?:\/[\s\S]*|id:[\s\S]*|ns:[0-9]+(?:\/[\s\S]*)?)$/,
  listing: /^(?:(?:\/[\s\S]*)?|id:[\s\S]*|ns:[0-9]+(?:\/[\s\S]*)?)$/,
};

const LONE_SURROGATE = /\p{Cs}/u;

export function parsePath(route: string, field: string, value: string, kind: PathKind, ns: number): ParsedPath {
  if (kind === 'listing' && value === '/') {
    throw badRequest(route, `request body: ${field}: Specify the root folder as an empty string rather than as "/".`);
  }
  if (!PATTERNS[kind].test(value)) {
    if (value === '' && kind !== 'listing') throw badRequest(route, `request body: ${field}: The root folder is unsupported.`);
    throw badRequest(route, `request body: ${field}: '${value}' did not match pattern '${PATTERNS[kind].source}'`);
  }
  if (value.startsWith('rev:')) return { kind: 'rev', rev: value.slice(4) };
  if (value.startsWith('id:')) {
    const slash = value.indexOf('/');
    const id = slash < 0 ? value : value.slice(0, slash);
    const rest = slash < 0 ? '' : value.slice(slash);
    if (id.length <= 3 || (rest && !wellFormed(rest))) return { kind: 'malformed' };
    return { kind: 'id', id, rest };
  }
  if (value.startsWith('ns:')) {
    const m = /^ns:([0-9]+)(\/[\s\S]*)?$/.exec(value)!;
    if (Number(m[1]) !== ns) return { kind: 'malformed' };
    value = m[2] ?? '';
  }
  if (value === '') return { kind: 'path', display: '' };
  if (!wellFormed(value)) return { kind: 'malformed' };
  return { kind: 'path', display: value };
}

/**
 * "/a/b": no empty, ".", ".." components, no trailing slash, no NUL, components ≤255 chars, and no
 * lone UTF-16 surrogate (JSON's "\ud800" parses to one; it has no UTF-8 form, so SQLite stored
 * bytes that read back as U+FFFD and the name could no longer be found by path).
 */
function wellFormed(p: string): boolean {
  if (!p.startsWith('/') || p.endsWith('/') || LONE_SURROGATE.test(p)) return false;
  for (const c of p.slice(1).split('/')) {
    if (c === '' || c === '.' || c === '..' || c.includes('\0') || c.length > 255 || /\s$/.test(c)) return false;
  }
  return true;
}

export function lower(display: string): string {
  return display.toLowerCase();
}

export function parentOf(display: string): string {
  const i = display.lastIndexOf('/');
  return i <= 0 ? '' : display.slice(0, i);
}

export function baseName(display: string): string {
  return display.slice(display.lastIndexOf('/') + 1);
}

/** The first free variant "name (2).ext", "name (3).ext", … for which `taken` is false. */
export function autorename(display: string, isFile: boolean, taken: (candidateLower: string) => boolean, suffix?: string): string {
  const parent = parentOf(display);
  const name = baseName(display);
  const dot = isFile ? name.lastIndexOf('.') : -1;
  const stem = dot > 0 ? name.slice(0, dot) : name;
  const ext = dot > 0 ? name.slice(dot) : '';
  if (suffix) {
    const c = `${parent}/${stem} (${suffix})${ext}`;
    if (!taken(lower(c))) return c;
  }
  for (let n = 2; ; n++) {
    const c = suffix ? `${parent}/${stem} (${suffix} ${n})${ext}` : `${parent}/${stem} (${n})${ext}`;
    if (!taken(lower(c))) return c;
  }
}
