// RETR, STOR, APPE, STOU and ABOR. Main thread. Invariants: bytes move only through the session
// file system's openRead/openWrite (the transfer engine); a command that fails before its transfer
// starts closes the data connector at once (no listener left behind); REST applies to the
// next RETR or STOR only, and never in TYPE A (550, as vsftpd: the client counts CRLF wire bytes,
// we count stored ones); ABOR is answered during the transfer: the transfer's 426, then 226;
// permissions (read, write) are checked at the path before the data connection is awaited.

import { PassThrough, type Duplex, type Readable } from 'node:stream';
import { DropftpError } from '../../errors.ts';
import type { FtpSession } from '../session-types.ts';
import { FromCrlf, ToCrlf } from '../ascii.ts';
import { baseName, parentOf } from '../fs/paths.ts';
import type { SessionFs, UploadSink } from '../fs/types.ts';
import { receiveStream, runTransfer, sendStream, waitForData } from '../transfer-runner.ts';
import { requireArg, sessionFs } from './helpers.ts';
import type { Command, CommandSpec } from './types.ts';

/** Runs the preparation of a transfer; on failure the pending data connection is freed. */
async function prepare<T>(session: FtpSession, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    session.closeConnector();
    throw err;
  }
}

async function retr(session: FtpSession, command: Command): Promise<void> {
  const fs = sessionFs(session);
  const offset = session.takeRestOffset();
  const { socket, source, info } = await prepare(session, async () => {
    const path = fs.resolve(requireArg(command));
    fs.check?.('read', path);
    // REST counts wire bytes (CRLF in TYPE A), the offset we can seek to counts stored bytes.
    if (offset > 0 && session.transferType === 'ascii') throw new DropftpError('DROPFTP_ERR_ASCII_RESUME');
    const info = await fs.stat(path);
    if (info.isDirectory) throw new DropftpError('DROPFTP_ERR_NOT_A_FILE');
    if (offset > info.size) throw new DropftpError('DROPFTP_ERR_BAD_OFFSET');
    const socket = await waitForData(session);
    let source: Readable;
    try {
      source = await fs.openRead(path, { offset });
    } catch (err) {
      socket.destroy();
      throw err;
    }
    return { socket, source, info };
  });
  const ascii = session.transferType === 'ascii';
  const wire = ascii ? source.pipe(new ToCrlf()) : source;
  if (ascii) {
    source.once('error', (err) => wire.destroy(err));
    // A send that fails destroys the converter only: the engine's download must go with it (its
    // ring and memory share stayed taken, and the engine's close waited on it for ever).
    wire.once('close', () => source.destroy());
  }
  // The byte count only in binary: TYPE A sends more (CRLF for each LF) than the file holds.
  await session.reply(150, ascii ? `Opening ASCII mode data connection for ${info.name}` : `Opening BINARY mode data connection for ${info.name} (${info.size - offset} bytes)`);
  await runTransfer(session, 'RETR', socket, (handle) => sendStream(wire, socket, handle, session.server.limits.unusedDataTimeoutMs));
}

/**
 * Names STOU uploads of this process are writing (lower case: Dropbox paths are case-insensitive),
 * so that STOUs racing in one folder pick different names; their commits are 'add' besides, so a
 * name taken by anyone else meanwhile fails the STOU rather than overwriting that file.
 */
const stouNames = new Set<string>();

/** A free name for STOU, reserved in stouNames until the caller releases it. */
async function uniquePath(fs: SessionFs, arg: string): Promise<string> {
  const wanted = fs.resolve(arg || 'file');
  const dir = parentOf(wanted);
  const name = baseName(wanted);
  for (let n = 0; n < 100; n++) {
    const candidate = n === 0 ? wanted : `${dir === '/' ? '' : dir}/${name}.${n}`;
    const key = candidate.toLowerCase();
    if (stouNames.has(key)) continue;
    try {
      await fs.stat(candidate);
    } catch (err) {
      if (!(err instanceof DropftpError && err.code === 'DROPFTP_ERR_NOT_FOUND')) throw err;
      if (stouNames.has(key)) continue; // taken by a STOU while this one asked
      stouNames.add(key);
      return candidate;
    }
  }
  throw new DropftpError('DROPFTP_ERR_EXISTS', 'no unique name found');
}

async function store(session: FtpSession, command: Command, mode: 'STOR' | 'APPE' | 'STOU'): Promise<void> {
  const fs = sessionFs(session);
  const rest = session.takeRestOffset();
  const offered = session.keptSizeOffered;
  session.keptSizeOffered = null;
  // STOU's name, reserved in stouNames until this command ends.
  let reserved = null as string | null;
  try {
    const { socket, sink, path } = await prepare(session, async () => {
      if (mode === 'STOU') fs.check?.('write', fs.resolve(command.arg || 'file'));
      const path = mode === 'STOU' ? await uniquePath(fs, command.arg) : fs.resolve(requireArg(command));
      if (mode === 'STOU') reserved = path;
      fs.check?.('write', path); // before waiting for the data connection: a refusal costs no transfer
      const ascii = session.transferType === 'ascii';
      const offset = mode === 'APPE' ? 0 : rest;
      // REST n + STOR in TYPE A: n counts the client's CRLF bytes, stored files hold LF (RFC 3659 5.1).
      if (ascii && offset > 0) throw new DropftpError('DROPFTP_ERR_ASCII_RESUME');
      const socket = await waitForData(session);
      let sink: UploadSink;
      try {
        sink = await fs.openWrite(path, { offset, append: mode === 'APPE', ascii, unique: mode === 'STOU', continueKept: offered === path });
      } catch (err) {
        socket.destroy();
        throw err;
      }
      return { socket, sink, path };
    });
    const ascii = session.transferType === 'ascii';
    let input: Duplex = socket;
    if (ascii) {
      const convert = new FromCrlf();
      const tee = new PassThrough();
      socket.pipe(convert).pipe(tee);
      socket.once('close', () => {
        if (!socket.readableEnded) tee.destroy();
      });
      input = tee;
    }
    const name = baseName(path);
    await session.reply(150, mode === 'STOU' ? `FILE: ${name}` : `Ok to send data for ${name}`);
    await runTransfer(session, mode, socket, (handle) => receiveStream(input, sink, handle, socket), mode === 'STOU' ? `Transfer complete (unique file name: ${name})` : 'Transfer complete');
  } finally {
    if (reserved !== null) stouNames.delete(reserved.toLowerCase());
  }
}

async function abor(session: FtpSession): Promise<void> {
  const transfer = session.transfer;
  if (!transfer) {
    session.closeConnector();
    return session.reply(225, 'No transfer to abort');
  }
  transfer.abort(new DropftpError('DROPFTP_ERR_ABORTED', 'ABOR'));
  await transfer.done;
  return session.reply(226, 'Abort successful');
}

export const TRANSFER_COMMANDS: CommandSpec[] = [
  { name: 'RETR', syntax: 'RETR <path>', description: 'Download a file', handler: retr },
  { name: 'STOR', syntax: 'STOR <path>', description: 'Upload a file', handler: (s, c) => store(s, c, 'STOR') },
  { name: 'APPE', guardedBy: ['STOR'], syntax: 'APPE <path>', description: 'Append to a file', handler: (s, c) => store(s, c, 'APPE') },
  { name: 'STOU', guardedBy: ['STOR'], syntax: 'STOU [<name>]', description: 'Upload under a unique name', handler: (s, c) => store(s, c, 'STOU') },
  { name: 'ABOR', urgent: true, syntax: 'ABOR', description: 'Abort the transfer in progress', handler: abor },
];
