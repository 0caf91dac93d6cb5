// Small helpers shared by the command handlers. Main thread.

import { DropftpError } from '../../errors.ts';
import type { FtpSession } from '../session-types.ts';
import type { SessionFs } from '../fs/types.ts';
import type { Granted } from '../list-format.ts';
import { ALL_PERMISSIONS, PERMISSIONS, type Permission } from '../../users/permissions.ts';
import type { Command } from './types.ts';

export function sessionFs(session: FtpSession): SessionFs {
  if (!session.files) throw new DropftpError('DROPFTP_ERR_NOT_LOGGED_IN');
  return session.files;
}

export function requireArg(command: Command): string {
  if (command.arg === '') throw new DropftpError('DROPFTP_ERR_BAD_COMMAND', `${command.directive} needs an argument`);
  return command.arg;
}

/** RFC 959 257 reply: the path in quotes, embedded quotes doubled. */
export function quotePath(path: string): string {
  return `"${path.replace(/"/g, '""')}"`;
}

/**
 * What the user may do at `path`, as the file system's per-path check decides it (user
 * permissions, read-only mounts, mount points that can be neither deleted nor renamed); the root can
 * never be. Asked through permissionsAt (no exception per entry: a read-only user's 20,000-entry
 * MLSD cost 330 ms of main thread through throwing checks, 30 ms this way).
 */
export function grantedAt(fs: SessionFs, path: string): Granted {
  let own: ReadonlySet<Permission> | null = null;
  let inside: ReadonlySet<Permission> | null = null;
  return (permission, within = false) => {
    if (within) return (inside ??= permissionsAt(fs, childPath(path, '.dropftp-perm-probe'))).has(permission);
    if (path === '/' && (permission === 'delete' || permission === 'rename')) return false;
    return (own ??= permissionsAt(fs, path)).has(permission);
  };
}

/** The file system's answer, without exceptions where it can give one (a listing asks per entry). */
function permissionsAt(fs: SessionFs, path: string): ReadonlySet<Permission> {
  if (fs.permissionsAt) return fs.permissionsAt(path);
  if (!fs.check) return ALL_PERMISSIONS;
  const check = fs.check.bind(fs);
  return new Set(
    PERMISSIONS.filter((permission) => {
      try {
        check(permission, path);
        return true;
      } catch {
        return false;
      }
    }),
  );
}

/** The client path of `name` inside the folder `dir`. */
export function childPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}
