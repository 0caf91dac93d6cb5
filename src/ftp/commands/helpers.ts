// Small helpers shared by the command handlers. Main thread.

import { DropftpError } from '../../errors.ts';
import type { FtpSession } from '../connection.ts';
import type { SessionFs } from '../fs/types.ts';
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
