// Session commands: login, options, status, help, FEAT, TYPE, REST, AUTH TLS/PBSZ/PROT. Main
// thread. Invariants: PASS failures are counted and the connection closed after maxLoginFailures;
// USER after a login drops that login first (as pyftpdlib: the client may change user); FEAT lists
// what is really supported; OPTS MLST selects the facts MLST/MLSD send (RFC 3659 7.9); REST takes a
// safe integer only; AUTH TLS uses the server's one shared SecureContext, and a client that does
// not finish its handshake within tlsHandshakeTimeoutMs is cut. Every refusal is a registry error.

import { DropftpError } from '../../errors.ts';
import { BORROWED_VERBS, fromFtpSrv } from '../ftp-srv-parts.ts';
import { MLST_FACTS, type MlstFact } from '../session-types.ts';
import { acceptTls } from '../tls-context.ts';
import type { Command, CommandSpec, FtpSession } from './types.ts';

function badSequence(message: string, clientDetail?: string): DropftpError {
  return new DropftpError('DROPFTP_ERR_BAD_SEQUENCE', message, clientDetail ? { clientDetail } : undefined);
}

function badArgument(message: string, clientDetail?: string): DropftpError {
  return new DropftpError('DROPFTP_ERR_BAD_COMMAND', message, clientDetail ? { clientDetail } : undefined);
}

async function user(session: FtpSession, command: Command): Promise<void> {
  if (!command.arg) throw badArgument('USER without a name', 'USER needs a user name');
  // RFC 959 4.1.1: USER may come at any time to change the user; the previous login is dropped
  // first (pyftpdlib does the same), so nothing of it survives a failed PASS.
  session.logout();
  session.username = command.arg;
  return session.reply(331, 'Password required');
}

async function pass(session: FtpSession, command: Command): Promise<void> {
  if (session.authenticated) throw badSequence('PASS after login', 'already logged in');
  if (!session.username) throw badSequence('PASS before USER', 'send USER first');
  try {
    await session.login(session.username, command.arg);
  } catch (err) {
    session.failedLogins += 1;
    session.username = undefined;
    const error = err instanceof DropftpError && err.code !== 'DROPFTP_ERR_LOGIN_FAILED' ? err : new DropftpError('DROPFTP_ERR_LOGIN_FAILED');
    await session.replyError(error);
    if (session.failedLogins >= session.server.limits.maxLoginFailures) {
      const tooMany = new DropftpError('DROPFTP_ERR_TOO_MANY_LOGIN_FAILURES');
      await session.close(tooMany.ftpCode, tooMany.clientText);
    }
    return;
  }
  return session.reply(230, 'Login successful');
}

async function quit(session: FtpSession): Promise<void> {
  // RFC 959 4.1.1: during a transfer the connection stays open for its result, then closes. A
  // client that sends STOR, its bytes and QUIT without waiting for the 226 wants its file stored.
  session.quitting = true;
  await session.transfer?.done;
  return session.close(221, 'Goodbye');
}

export function featLines(session: FtpSession): string[] {
  // RFC 3659 7.8: every fact offered, the selected ones (OPTS MLST) marked with '*'.
  const mlst = MLST_FACTS.map((fact) => `${fact}${session.mlstFacts.has(fact) ? '*' : ''};`).join('');
  const lines = ['EPRT', 'EPSV', 'MDTM', `MLST ${mlst}`, 'PASV', 'REST STREAM', 'SIZE', 'TVFS', 'UTF8'];
  if (session.server.secureContext) lines.push('AUTH TLS', 'PBSZ', 'PROT');
  return lines.sort();
}

async function feat(session: FtpSession): Promise<void> {
  return session.reply(211, 'Features:', ...featLines(session).map((line) => ({ message: ` ${line}`, raw: true })), 'End');
}

async function opts(session: FtpSession, command: Command): Promise<void> {
  const [option = '', setting = ''] = command.arg.split(' ');
  const name = option.toUpperCase();
  if (name === 'UTF8' || name === 'UTF-8') {
    // Paths are always UTF-8 (RFC 2640); OFF is accepted but changes nothing, so names stay intact.
    if (/^(ON|OFF|)$/i.test(setting)) return session.reply(200, `UTF8 ${setting ? setting.toUpperCase() : 'ON'}`);
    throw badArgument(`OPTS UTF8 ${setting}`, 'UTF8 takes ON or OFF');
  }
  if (name === 'MLST') {
    // RFC 3659 7.9: the facts named (unknown ones ignored) become the session's selection; no
    // argument selects none. The reply names the selection as it now stands.
    const wanted = new Set(setting.toLowerCase().split(';').map((fact) => fact.trim()));
    session.mlstFacts = new Set(MLST_FACTS.filter((fact: MlstFact) => wanted.has(fact)));
    return session.reply(200, `MLST OPTS ${[...session.mlstFacts].map((fact) => `${fact};`).join('')}`);
  }
  throw new DropftpError('DROPFTP_ERR_PARAMETER_NOT_SUPPORTED', `OPTS ${name}`, { clientDetail: 'OPTS takes UTF8 or MLST' });
}

/**
 * RFC 959 3.1.1 TYPE: A [N] (ASCII, non-print), I (image), L 8 (local byte size 8: the same bytes as
 * I, RFC 1123 4.1.2.1). E (EBCDIC), A T/C (Telnet, ASA formats) and other byte sizes are refused 504.
 */
async function type(session: FtpSession, command: Command): Promise<void> {
  const words = command.arg.trim().toUpperCase().split(/\s+/);
  const [kind = '', param, ...rest] = words;
  if (rest.length) throw badArgument(`TYPE ${command.arg}`);
  if (kind === 'A' && (param === undefined || param === 'N')) {
    session.transferType = 'ascii';
    return session.reply(200, 'Switching to ASCII mode');
  }
  if ((kind === 'I' && param === undefined) || (kind === 'L' && param === '8') || kind === 'L8') {
    session.transferType = 'binary';
    return session.reply(200, 'Switching to Binary mode');
  }
  if (['A', 'E', 'I', 'L'].includes(kind)) throw new DropftpError('DROPFTP_ERR_PARAMETER_NOT_SUPPORTED', `TYPE ${command.arg}`, { clientDetail: 'use TYPE I, L 8 or A' });
  throw badArgument(`TYPE ${command.arg}`, 'use TYPE I, L 8 or A');
}

/** RFC 3659 5.3 REST STREAM: a byte offset, digits only, a safe integer (never "1e+23"). */
async function rest(session: FtpSession, command: Command): Promise<void> {
  const text = command.arg.trim();
  const offset = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(offset)) throw badArgument(`REST ${text.slice(0, 32)}`, 'REST takes a byte count from 0 to 9007199254740991');
  session.setRestOffset(offset);
  return session.reply(350, `Restarting at ${offset}. Send STORE or RETRIEVE to initiate transfer`);
}

const TLS_VERBS = new Set(['AUTH', 'PBSZ', 'PROT']);

async function help(session: FtpSession, command: Command): Promise<void> {
  const table = session.server.commands;
  if (command.arg) {
    const spec = table.get(command.arg.trim().toUpperCase());
    if (!spec) throw new DropftpError('DROPFTP_ERR_UNKNOWN_COMMAND', `HELP ${command.arg.slice(0, 16)}`);
    return session.reply(214, spec.syntax, spec.description);
  }
  // Without a certificate the TLS verbs only refuse: not listed as recognized then.
  const tls = session.server.secureContext !== null;
  const names = [...new Set([...table.values()].map((spec) => spec.name))].filter((name) => tls || !TLS_VERBS.has(name)).sort();
  const rows: string[] = [];
  for (let i = 0; i < names.length; i += 8) rows.push(' ' + names.slice(i, i + 8).join(' '));
  return session.reply(214, 'The following commands are recognized:', ...rows.map((row) => ({ message: row, raw: true })), 'Help OK');
}

async function auth(session: FtpSession, command: Command): Promise<void> {
  const context = session.server.secureContext;
  if (!/^(TLS|TLS-C)$/i.test(command.arg.trim())) throw new DropftpError('DROPFTP_ERR_PARAMETER_NOT_SUPPORTED', `AUTH ${command.arg.slice(0, 16)}`, { clientDetail: 'use AUTH TLS' });
  if (!context) throw new DropftpError('DROPFTP_ERR_UNKNOWN_COMMAND', 'AUTH without a certificate', { clientDetail: 'TLS not configured' });
  if (session.secure) throw badSequence('AUTH twice', 'already secured');
  await session.reply(234, 'AUTH TLS successful');
  const raw = session.commandSocket;
  const secure = acceptTls(raw, context, session.server.limits.tlsHandshakeTimeoutMs);
  // Keep every listener on the raw socket: forward the secure socket's events.
  for (const event of ['data', 'timeout', 'end', 'close', 'drain', 'error'] as const) {
    secure.on(event, (...args: unknown[]) => raw.emit(event, ...args));
  }
  session.commandSocket = secure;
  session.secure = true;
  // What came in the clear after AUTH TLS is not the client's word over TLS.
  session.discardPendingInput();
}

async function pbsz(session: FtpSession, command: Command): Promise<void> {
  if (!session.secure) throw badSequence('PBSZ before AUTH', 'PBSZ requires AUTH first');
  // RFC 2228: a decimal integer (any size asked is answered with 0, the only one TLS uses).
  if (!/^\d{1,10}$/.test(command.arg.trim())) throw badArgument(`PBSZ ${command.arg.slice(0, 16)}`, 'PBSZ takes a number: PBSZ 0');
  session.bufferSize = 0;
  return session.reply(200, command.arg.trim() === '0' ? 'PBSZ=0' : 'PBSZ=0 (buffer size must be 0)');
}

async function prot(session: FtpSession, command: Command): Promise<void> {
  if (!session.secure) throw badSequence('PROT before AUTH', 'PROT requires AUTH first');
  // RFC 4217 9 / RFC 2228: PROT needs a PBSZ first (every common client sends PBSZ 0 before it).
  if (session.bufferSize === false) throw badSequence('PROT before PBSZ', 'PROT requires PBSZ 0 first');
  const level = command.arg.trim().toUpperCase();
  if (level === 'C' || level === 'P') {
    session.dataProtection = level;
    return session.reply(200, `Protection level ${level}`);
  }
  throw new DropftpError('DROPFTP_ERR_PROTECTION_LEVEL', `PROT ${level.slice(0, 8)}`, { clientDetail: 'use PROT C or P' });
}

async function site(session: FtpSession, command: Command): Promise<void> {
  // No SITE subcommand is offered: CHMOD has no Dropbox meaning, and every other one would bypass
  // per-verb permissions.
  if (/^HELP\b/i.test(command.arg)) return session.reply(214, 'No SITE commands are available');
  throw new DropftpError('DROPFTP_ERR_UNKNOWN_COMMAND', 'SITE', { clientDetail: 'no SITE commands' });
}

export const SESSION_COMMANDS: CommandSpec[] = [
  { name: 'USER', noAuth: true, syntax: 'USER <username>', description: 'Authentication username', handler: user },
  { name: 'PASS', noAuth: true, syntax: 'PASS <password>', description: 'Authentication password', handler: pass },
  { name: 'QUIT', noAuth: true, urgent: true, syntax: 'QUIT', description: 'Disconnect', handler: quit },
  { name: 'FEAT', noAuth: true, syntax: 'FEAT', description: 'List supported extensions', handler: feat },
  { name: 'OPTS', noAuth: true, syntax: 'OPTS <option> [<value>]', description: 'Set an option (UTF8)', handler: opts },
  { name: 'HELP', noAuth: true, syntax: 'HELP [<command>]', description: 'Show help', handler: help },
  { name: 'AUTH', noAuth: true, syntax: 'AUTH TLS', description: 'Upgrade the control connection to TLS', handler: auth },
  { name: 'PBSZ', noAuth: true, syntax: 'PBSZ 0', description: 'Protection buffer size', handler: pbsz },
  { name: 'PROT', noAuth: true, syntax: 'PROT C|P', description: 'Data channel protection level', handler: prot },
  { name: 'SITE', syntax: 'SITE <command>', description: 'Site-specific commands (none offered)', handler: site },
  { name: 'TYPE', syntax: 'TYPE A|I|L 8', description: 'Set the transfer type: ASCII (A) or binary (I, L 8)', handler: type },
  { name: 'REST', feat: ['REST STREAM'], syntax: 'REST <byte-count>', description: 'Restart the next RETR or STOR at this offset', handler: rest },
  ...BORROWED_VERBS.map((verb) => fromFtpSrv(verb, verb === 'NOOP' ? { urgent: true } : {})),
];
