// Client paths inside a session's jail, and their Dropbox paths. Pure functions, any thread.
// Invariants: a client path is absolute, normalised, '/'-separated, never ends in '/' except the
// root itself, and '..' never climbs above '/' (CVE-2020-26299); no component is, or could be read
// by any later layer as, '.' or '..' or a separator: percent-encoded (%2e%2e, %2f), Unicode
// look-alikes (fullwidth ．／＼, one/two-dot leaders, division and fraction slashes), backslashes,
// NUL, CR, LF and invisible padding are refused (DROPFTP_ERR_BAD_PATH, 553); Dropbox paths are the user's
// root folder plus the client path, with '' for the Dropbox root (never '/', dropbox-api.md 5), and
// never an `id:`, `rev:` or `ns:` reference (they always start with '/').

import { posix } from 'node:path';
import { DropftpError } from '../../errors.ts';

const MAX_PATH_CHARS = 4096;
// Characters that some layer (a Windows client, a percent-decoding proxy, NFKC folding) could read
// as a separator. NFKC folds ／ and ＼ already; these survive it.
const SEPARATOR_LOOKALIKES = /[\\\u2215\u2044\u29F8\u29F5\u2216\uFE68\uFF0F\uFF3C]/u;
const INVISIBLE = /[\p{Default_Ignorable_Code_Point}\s]/gu;

function percentDecoded(text: string): string {
  let current = text;
  for (let i = 0; i < 3 && current.includes('%'); i++) {
    try {
      const next = decodeURIComponent(current);
      if (next === current) break;
      current = next;
    } catch {
      break; // not valid percent-encoding: a literal '%' name, harmless as it is
    }
  }
  return current;
}

/**
 * Printable ASCII and ASCII white space without '%': percent-decoding and NFKC both leave such a
 * name as it is, so it is its only form (most names; the four forms cost ~3 µs a path).
 */
const PLAIN_ASCII = /^[\t-\r\x20-\x24\x26-\x7e]*$/;

/** Throws DROPFTP_ERR_BAD_PATH when a path component could be read as a traversal or separator. */
export function checkComponent(name: string): void {
  if (PLAIN_ASCII.test(name)) return checkForm(name, name);
  const decoded = percentDecoded(name);
  for (const form of new Set([name, decoded, name.normalize('NFKC'), decoded.normalize('NFKC')])) checkForm(form, name);
}

/** One way `name` could be read (`form`): no separator, look-alike or NUL in it, and not a dot segment. */
function checkForm(form: string, name: string): void {
  if (form.includes('\0') || form.includes('/') || SEPARATOR_LOOKALIKES.test(form)) {
    throw new DropftpError('DROPFTP_ERR_BAD_PATH', `path component ${JSON.stringify(name)} holds a separator or look-alike`);
  }
  const bare = form.replace(INVISIBLE, '');
  if (bare === '.' || bare === '..' || (bare === '' && form !== name)) {
    throw new DropftpError('DROPFTP_ERR_BAD_PATH', `path component ${JSON.stringify(name)} reads as a dot segment`);
  }
}

export function resolveClientPath(cwd: string, arg: string): string {
  if (arg.includes('\0')) throw new DropftpError('DROPFTP_ERR_BAD_PATH', 'NUL in path');
  // A CR (a LF ends the command line first) cannot be named back in a reply, where it is a line
  // end: "MKD /a\r226 x" made a folder whose 257, PWD and MLST showed "/a 226 x", a path that does
  // not exist (RFC 959 would send CR NUL; no client reads that).
  if (arg.includes('\r') || arg.includes('\n')) throw new DropftpError('DROPFTP_ERR_BAD_PATH', 'line break in path');
  if (arg.length > MAX_PATH_CHARS) throw new DropftpError('DROPFTP_ERR_BAD_PATH', 'path too long');
  // A backslash is never a separator here, and never a name character either: a Windows client
  // sending "..\x" must not land on a file literally named "..\x" that a Windows sync client
  // would later read as a traversal.
  if (arg.includes('\\')) throw new DropftpError('DROPFTP_ERR_BAD_PATH', 'backslash in path');
  const joined = arg.startsWith('/') ? arg : posix.join(cwd, arg);
  const normal = posix.normalize('/' + joined); // normalize('/..') is '/': no escape above root
  const path = normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal;
  if (path !== '/') for (const component of path.slice(1).split('/')) checkComponent(component);
  return path;
}

/** Folder root ('' or '/Team/alice', no trailing slash) + client path → Dropbox API path. */
export function toDropboxPath(root: string, clientPath: string): string {
  if (!clientPath.startsWith('/')) throw new DropftpError('DROPFTP_ERR_BAD_PATH', 'client path must be absolute');
  if (root !== '' && !root.startsWith('/')) throw new DropftpError('DROPFTP_ERR_BAD_PATH', 'root must be absolute');
  const path = clientPath === '/' ? root : root + clientPath;
  return path === '/' ? '' : path;
}

export function normalizeRoot(root: string): string {
  const normal = resolveClientPath('/', root);
  return normal === '/' ? '' : normal;
}

export function parentOf(clientPath: string): string {
  return posix.dirname(clientPath);
}

export function baseName(clientPath: string): string {
  return posix.basename(clientPath);
}

/** True when `path` is `folder` or lies below it (client paths, case-insensitive like Dropbox). */
export function isWithin(path: string, folder: string): boolean {
  const p = path.toLowerCase();
  const f = folder.toLowerCase();
  return f === '/' || p === f || p.startsWith(f + '/');
}
