// Mounts: a folder of some account shown at a path of a user's tree ("/shared=bob:/projects:ro"),
// which is how users share files. Pure parsing and validation, main thread. Invariants: a mount
// path is an absolute, normalised client path other than '/', made only of components the jail
// accepts; no mount lies inside another; the target folder is an absolute Dropbox path ('' for an
// account's root); account names use the users-file name alphabet.

import { DropftpError } from '../errors.ts';
import { normalizeRoot, resolveClientPath, isWithin } from '../ftp/fs/paths.ts';

export interface Mount {
  /** Client path where the folder appears, e.g. '/shared'. */
  path: string;
  account: string;
  /** Dropbox folder shown there ('' = the account's root). */
  folder: string;
  readOnly: boolean;
}

/** The YAML form (the string form "/here=account:/there[:ro|:rw]" is accepted too). */
export interface MountRecord {
  path: string;
  account: string;
  folder: string;
  'read-only'?: boolean;
}

const ACCOUNT = /^[A-Za-z0-9._@-]{1,64}$/;

export function validAccountName(name: string): boolean {
  return ACCOUNT.test(name);
}

function bad(where: string, why: string): DropftpError {
  return new DropftpError('DROPFTP_ERR_CONFIG', `${where}: ${why}`);
}

/** Parses "/here=account:/there", "/here=account:/there:ro" or ":rw". */
export function parseMountSpec(spec: string, where = '--mount'): Mount {
  const eq = spec.indexOf('=');
  const colon = spec.indexOf(':', eq + 1);
  if (eq <= 0 || colon === -1) throw bad(where, `expected /here=account:/there[:ro|:rw], got "${spec}"`);
  let folder = spec.slice(colon + 1);
  let readOnly = false;
  const mode = /:(ro|rw)$/.exec(folder);
  if (mode) {
    readOnly = mode[1] === 'ro';
    folder = folder.slice(0, -3);
  }
  return checkMount({ path: spec.slice(0, eq), account: spec.slice(eq + 1, colon), folder, 'read-only': readOnly }, where);
}

export function checkMount(record: unknown, where: string): Mount {
  if (typeof record === 'string') return parseMountSpec(record, where);
  const r = record as Partial<MountRecord> | null;
  if (!r || typeof r !== 'object') throw bad(where, 'a mount is "/here=account:/there[:ro]" or a map with path, account, folder');
  if (typeof r.path !== 'string' || !r.path.startsWith('/')) throw bad(where, 'path must be an absolute path in the user\'s tree');
  if (typeof r.account !== 'string' || !validAccountName(r.account)) throw bad(where, `bad account "${String(r.account)}"`);
  if (typeof r.folder !== 'string' || !r.folder.startsWith('/')) throw bad(where, 'folder must be an absolute folder of the account ("/" for all of it)');
  if (r['read-only'] !== undefined && typeof r['read-only'] !== 'boolean') throw bad(where, 'read-only must be true or false');
  let path: string;
  let folder: string;
  try {
    path = resolveClientPath('/', r.path);
    folder = normalizeRoot(r.folder);
  } catch (err) {
    throw bad(where, (err as Error).message);
  }
  if (path === '/') throw bad(where, 'a mount cannot replace the root; use the user\'s root folder instead');
  if (path !== r.path.replace(/\/+$/, '')) throw bad(where, `path must be normalised (got "${r.path}", meant "${path}"?)`);
  return { path, account: r.account, folder, readOnly: r['read-only'] === true };
}

/** Refuses two mounts at one path or one inside another. */
export function checkMountSet(mounts: readonly Mount[], where: string): void {
  for (let i = 0; i < mounts.length; i++) {
    for (let j = i + 1; j < mounts.length; j++) {
      const a = mounts[i]!.path;
      const b = mounts[j]!.path;
      if (isWithin(a, b) || isWithin(b, a)) throw bad(where, `mounts ${a} and ${b} overlap`);
    }
  }
}

/** The string form, as `user list` prints it. */
export function formatMount(mount: Mount): string {
  return `${mount.path}=${mount.account}:${mount.folder || '/'}${mount.readOnly ? ':ro' : ''}`;
}

export function toMountRecord(mount: Mount): MountRecord {
  return { path: mount.path, account: mount.account, folder: mount.folder || '/', 'read-only': mount.readOnly };
}
