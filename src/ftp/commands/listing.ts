// LIST, NLST, MLSD and STAT. Main thread. Invariants: the listing is fetched before the data
// connection is used (a missing folder answers 550 and frees the connector); the whole listing is
// one write; LIST/NLST ignore leading ls options ("-la"),
// MLSD/MLST take the argument verbatim; STAT without argument may run during a transfer.

import { DropftpError } from '../../errors.ts';
import type { FtpSession } from '../session-types.ts';
import { lsLine, renderListing, type Granted } from '../list-format.ts';
import { runTransfer, sendBuffer, waitForData } from '../transfer-runner.ts';
import type { FileInfo } from '../fs/types.ts';
import { childPath, grantedAt, sessionFs } from './helpers.ts';
import { splitListOptions, type Command, type CommandSpec } from './types.ts';

/** The entries to list, and the user's permissions at each (for perm facts and ls modes). */
async function entriesFor(session: FtpSession, arg: string, format: 'LIST' | 'NLST' | 'MLSD'): Promise<{ entries: FileInfo[]; grantedFor: (entry: FileInfo) => Granted }> {
  const fs = sessionFs(session);
  const path = fs.resolve(arg || '.');
  fs.check?.('list', path);
  const info = await fs.stat(path);
  if (info.isDirectory) return { entries: await fs.list(path), grantedFor: (entry) => grantedAt(fs, childPath(path, entry.name)) };
  if (format === 'MLSD') throw new DropftpError('DROPFTP_ERR_NOT_A_FOLDER');
  return { entries: [info], grantedFor: () => grantedAt(fs, path) };
}

async function listing(session: FtpSession, command: Command, format: 'LIST' | 'NLST' | 'MLSD'): Promise<void> {
  const arg = format === 'MLSD' ? command.arg : splitListOptions(command.arg).path;
  let socket;
  let body: Buffer;
  try {
    const { entries, grantedFor } = await entriesFor(session, arg, format);
    body = renderListing(entries, format, Date.now(), grantedFor, session.mlstFacts);
    socket = await waitForData(session);
  } catch (err) {
    session.closeConnector();
    throw err;
  }
  await session.reply(150, 'Here comes the directory listing');
  await runTransfer(session, format, socket, (handle) => sendBuffer(body, socket, handle, session.server.limits.unusedDataTimeoutMs), 'Directory send OK');
}

async function stat(session: FtpSession, command: Command): Promise<void> {
  if (!command.arg) {
    const transfer = session.transfer;
    const lines = [
      `Connected from ${session.controlPeerAddress}`,
      `Logged in as ${session.username ?? '(nobody)'}`,
      `TYPE: ${session.transferType === 'ascii' ? 'ASCII' : 'BINARY'}`,
      transfer ? `${transfer.directive} in progress, ${transfer.bytes} bytes transferred` : 'No data transfer in progress',
    ];
    return session.reply(211, 'dropftp status:', ...lines.map((line) => ({ message: ` ${line}`, raw: true })), 'End of status');
  }
  if (!session.authenticated) throw new DropftpError('DROPFTP_ERR_NOT_LOGGED_IN');
  const { path } = splitListOptions(command.arg);
  const { entries, grantedFor } = await entriesFor(session, path, 'LIST');
  const now = Date.now();
  return session.reply(213, 'Status follows:', ...entries.map((entry) => ({ message: ` ${lsLine(entry, now, grantedFor(entry))}`, raw: true })), 'End of status');
}

export const LISTING_COMMANDS: CommandSpec[] = [
  { name: 'LIST', syntax: 'LIST [<path>]', description: 'List a directory (ls -l format)', handler: (s, c) => listing(s, c, 'LIST') },
  { name: 'NLST', syntax: 'NLST [<path>]', description: 'List names only', handler: (s, c) => listing(s, c, 'NLST') },
  { name: 'MLSD', syntax: 'MLSD [<path>]', description: 'Machine-readable directory listing (RFC 3659)', handler: (s, c) => listing(s, c, 'MLSD') },
  { name: 'STAT', noAuth: true, urgent: true, syntax: 'STAT [<path>]', description: 'Server status, or a listing on the control connection', handler: stat },
];
