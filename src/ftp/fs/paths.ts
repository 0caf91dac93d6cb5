// Client paths inside a session's jail, and their Dropbox paths. Pure functions, any thread.
// Invariants: a client path is absolute, normalised, '/'-separated, never ends in '/' except the
// root itself, and '..' never climbs above '/' (CVE-2020-26299); Dropbox paths are the user's root
// folder plus the client path, with '' for the Dropbox root (never '/', dropbox-api.md 5).

import { posix } from 'node:path';
import { DropftpError } from '../../errors.ts';

export function resolveClientPath(cwd: string, arg: string): string {
  if (arg.includes('\0')) throw new DropftpError('DROPFTP_ERR_BAD_PATH', 'NUL in path');
  const joined = arg.startsWith('/') ? arg : posix.join(cwd, arg);
  const normal = posix.normalize('/' + joined); // normalize('/..') is '/': no escape above root
  return normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal;
}

/** Folder root ('' or '/Team/alice', no trailing slash) + client path → Dropbox API path. */
export function toDropboxPath(root: string, clientPath: string): string {
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
