// Small helpers shared by the command handlers. Main thread.

import { DropftpError } from '../../errors.ts';
import type { FtpSession } from '../connection.ts';
import type { SessionFs } from '../fs/types.ts';
import type { Granted } from '../list-format.ts';
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
 * What the user may do at `path`, asked of the file system's own per-path check (user permissions,
 * read-only mounts, mount points that can be neither deleted nor renamed); the root can never be.
 */
export function grantedAt(fs: SessionFs, path: string): Granted {
  const memo = new Map<string, boolean>();
  return (permission, inside = false) => {
    const key = inside ? `${permission}/` : permission;
    let ok = memo.get(key);
    if (ok === undefined) {
      ok = inside || !(path === '/' && (permission === 'delete' || permission === 'rename'));
      if (ok && fs.check) {
        try {
          // A name no entry has: only the place's permissions apply, not the mount-point rules.
          fs.check(permission, inside ? childPath(path, '.dropftp-perm-probe') : path);
        } catch {
          ok = false;
        }
      }
      memo.set(key, ok);
    }
    return ok;
  };
}

/** The client path of `name` inside the folder `dir`. */
export function childPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}
