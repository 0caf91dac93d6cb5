// Navigation and metadata commands: PWD, CWD, CDUP, MKD, RMD, DELE, RNFR/RNTO, SIZE, MDTM, MLST.
// Main thread. Invariants: replies show client paths only; failures surface as registry codes (errors.ts), never raw error messages; XPWD,
// XCWD, XCUP, XMKD and XRMD are aliases of the same specs, so a blacklist of one blocks the other;
// SIZE, MDTM and MLST need `list` at their path, RNFR `rename` (checked before anything is read);
// the user's root is never renamed (RNFR / gets 550).

import { DropftpError } from '../../errors.ts';
import type { FtpSession } from '../session-types.ts';
import { ftpTime, mlsxFacts } from '../list-format.ts';
import { grantedAt, quotePath, requireArg, sessionFs } from './helpers.ts';
import type { Command, CommandSpec } from './types.ts';

async function pwd(session: FtpSession): Promise<void> {
  return session.reply(257, `${quotePath(sessionFs(session).cwd)} is the current directory`);
}

async function cwd(session: FtpSession, command: Command): Promise<void> {
  const fs = sessionFs(session);
  const next = await fs.chdir(fs.resolve(requireArg(command)));
  return session.reply(250, `Directory changed to ${quotePath(next)}`);
}

async function cdup(session: FtpSession): Promise<void> {
  const fs = sessionFs(session);
  const next = await fs.chdir(fs.resolve('..'));
  return session.reply(250, `Directory changed to ${quotePath(next)}`);
}

async function mkd(session: FtpSession, command: Command): Promise<void> {
  const fs = sessionFs(session);
  const path = fs.resolve(requireArg(command));
  await fs.mkdir(path);
  return session.reply(257, `${quotePath(path)} created`);
}

async function rmd(session: FtpSession, command: Command): Promise<void> {
  const fs = sessionFs(session);
  await fs.rmdir(fs.resolve(requireArg(command)));
  return session.reply(250, 'Directory removed');
}

async function dele(session: FtpSession, command: Command): Promise<void> {
  const fs = sessionFs(session);
  await fs.remove(fs.resolve(requireArg(command)));
  return session.reply(250, 'File deleted');
}

async function rnfr(session: FtpSession, command: Command): Promise<void> {
  const fs = sessionFs(session);
  const path = fs.resolve(requireArg(command));
  session.renameFrom = null;
  // The user's root (a jail, or the account's root) is never renamed: refuse before RNTO.
  if (path === '/') throw new DropftpError('DROPFTP_ERR_PERMISSION', 'RNFR of the root');
  fs.check?.('rename', path);
  await fs.stat(path);
  session.renameFrom = path;
  return session.reply(350, 'Ready for RNTO');
}

async function rnto(session: FtpSession, command: Command): Promise<void> {
  const fs = sessionFs(session);
  const from = session.renameFrom;
  session.renameFrom = null;
  if (!from) throw new DropftpError('DROPFTP_ERR_BAD_SEQUENCE', 'RNTO without RNFR', { clientDetail: 'send RNFR first' });
  const to = fs.resolve(requireArg(command));
  await fs.rename(from, to);
  session.emit('RNTO', null, to);
  return session.reply(250, 'Rename successful');
}

async function size(session: FtpSession, command: Command): Promise<void> {
  const fs = sessionFs(session);
  const path = fs.resolve(requireArg(command));
  fs.check?.('list', path);
  // An interrupted upload of this path by this user: tell the client where to resume (REST n +
  // STOR, or APPE, continue the kept session); nothing of it is visible anywhere else.
  const kept = fs.keptUploadOffset?.(path) ?? null;
  session.keptSizeOffered = kept !== null ? path : null;
  if (kept !== null) return session.reply(213, String(kept));
  const info = await fs.stat(path);
  if (info.isDirectory) throw new DropftpError('DROPFTP_ERR_NOT_A_FILE');
  return session.reply(213, String(info.size));
}

async function mdtm(session: FtpSession, command: Command): Promise<void> {
  const fs = sessionFs(session);
  const path = fs.resolve(requireArg(command));
  fs.check?.('list', path);
  const info = await fs.stat(path);
  if (info.isDirectory) throw new DropftpError('DROPFTP_ERR_NOT_A_FILE');
  return session.reply(213, ftpTime(info.mtime));
}

async function mlst(session: FtpSession, command: Command): Promise<void> {
  const fs = sessionFs(session);
  const path = fs.resolve(command.arg || '.');
  fs.check?.('list', path);
  const info = await fs.stat(path);
  const facts = mlsxFacts(info, { granted: grantedAt(fs, path), facts: session.mlstFacts });
  return session.reply(250, 'Listing', { message: ` ${facts} ${path}`, raw: true }, 'End');
}

export const FILE_COMMANDS: CommandSpec[] = [
  { name: 'PWD', aliases: ['XPWD'], syntax: 'PWD', description: 'Print working directory', handler: pwd },
  { name: 'CWD', aliases: ['XCWD'], syntax: 'CWD <path>', description: 'Change working directory', handler: cwd },
  { name: 'CDUP', aliases: ['XCUP'], guardedBy: ['CWD'], syntax: 'CDUP', description: 'Change to parent directory', handler: cdup },
  { name: 'MKD', aliases: ['XMKD'], syntax: 'MKD <path>', description: 'Make directory', handler: mkd },
  { name: 'RMD', aliases: ['XRMD'], syntax: 'RMD <path>', description: 'Remove an empty directory', handler: rmd },
  { name: 'DELE', syntax: 'DELE <path>', description: 'Delete a file', handler: dele },
  { name: 'RNFR', syntax: 'RNFR <path>', description: 'Rename from', handler: rnfr },
  { name: 'RNTO', guardedBy: ['RNFR'], syntax: 'RNTO <path>', description: 'Rename to', handler: rnto },
  { name: 'SIZE', syntax: 'SIZE <path>', description: 'File size in bytes', handler: size },
  { name: 'MDTM', syntax: 'MDTM <path>', description: 'File modification time', handler: mdtm },
  { name: 'MLST', syntax: 'MLST [<path>]', description: 'Machine-readable facts about one entry', handler: mlst },
];
