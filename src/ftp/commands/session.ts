// Session commands: login, options, status, help, FEAT, AUTH TLS/PBSZ/PROT. Main thread.
// Invariants: PASS failures are counted and the connection closed after maxLoginFailures (ftp-srv
// allowed unlimited retries); FEAT lists what is really supported (ftp-srv omitted EPSV, EPRT,
// MLST, REST STREAM, TVFS); AUTH TLS uses the server's one shared SecureContext, and a client that
// does not finish its handshake within tlsHandshakeTimeoutMs is cut (its slot freed). Simple verbs
// (TYPE, MODE, STRU, ALLO, SYST, NOOP, REST, PBSZ) run ftp-srv's own handlers.

import { DropftpError } from '../../errors.ts';
import type { FtpSession } from '../connection.ts';
import { acceptTls } from '../tls-context.ts';
import { FTP_SRV_REGISTRY, silentLogger } from '../ftp-srv-types.ts';
import type { Command, CommandSpec } from './types.ts';

/** Runs ftp-srv's registered handler for a verb whose ftp-srv implementation is sound. */
export function fromFtpSrv(name: string, extra: Partial<CommandSpec> = {}): CommandSpec {
  const original = FTP_SRV_REGISTRY[name];
  if (!original) throw new Error(`ftp-srv has no ${name}`);
  return {
    name,
    noAuth: original.flags?.no_auth === true,
    syntax: original.syntax.replace('{{cmd}}', name),
    description: original.description,
    ...extra,
    handler: async (session, command) => {
      const ftpSrvCommand = { directive: command.directive, arg: command.arg === '' ? null : command.arg, flags: [], raw: `${command.directive} ${command.arg}` };
      await original.handler.call(session, { log: silentLogger, command: ftpSrvCommand });
    },
  };
}

async function user(session: FtpSession, command: Command): Promise<void> {
  if (session.authenticated) return session.reply(503, 'Already logged in');
  if (!command.arg) return session.reply(501, 'Must provide username');
  session.username = command.arg;
  return session.reply(331, 'Password required');
}

async function pass(session: FtpSession, command: Command): Promise<void> {
  if (session.authenticated) return session.reply(503, 'Already logged in');
  if (!session.username) return session.reply(503, 'Send USER first');
  try {
    await session.login(session.username, command.arg);
  } catch (err) {
    session.failedLogins += 1;
    session.username = undefined;
    const error = err instanceof DropftpError && err.code !== 'DROPFTP_ERR_LOGIN_FAILED' ? err : new DropftpError('DROPFTP_ERR_LOGIN_FAILED');
    if (session.failedLogins >= session.server.limits.maxLoginFailures) {
      await session.reply(error.ftpCode, error.clientText);
      return session.close(421, 'Too many failed logins');
    }
    return session.reply(error.ftpCode, error.clientText);
  }
  return session.reply(230, 'Login successful');
}

async function quit(session: FtpSession): Promise<void> {
  session.transfer?.abort(new DropftpError('DROPFTP_ERR_ABORTED', 'QUIT during transfer'));
  await session.transfer?.done;
  return session.close(221, 'Goodbye');
}

export function featLines(session: FtpSession): string[] {
  const lines = ['EPRT', 'EPSV', 'MDTM', 'MLST type*;size*;modify*;perm*;unique*;', 'PASV', 'REST STREAM', 'SIZE', 'TVFS', 'UTF8'];
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
    return session.reply(501, 'Unknown setting for UTF8');
  }
  if (name === 'MLST') return session.reply(200, 'MLST OPTS type;size;modify;perm;unique;');
  return session.reply(501, 'Unknown option');
}

async function help(session: FtpSession, command: Command): Promise<void> {
  const table = session.server.commands;
  if (command.arg) {
    const spec = table.get(command.arg.trim().toUpperCase());
    if (!spec) return session.reply(502, 'Unknown command');
    return session.reply(214, spec.syntax, spec.description);
  }
  const names = [...new Set([...table.values()].map((spec) => spec.name))].sort();
  const rows: string[] = [];
  for (let i = 0; i < names.length; i += 8) rows.push(' ' + names.slice(i, i + 8).join(' '));
  return session.reply(214, 'The following commands are recognized:', ...rows.map((row) => ({ message: row, raw: true })), 'Help OK');
}

async function auth(session: FtpSession, command: Command): Promise<void> {
  const context = session.server.secureContext;
  if (!/^(TLS|TLS-C)$/i.test(command.arg.trim())) return session.reply(504, 'Only AUTH TLS is supported');
  if (!context) return session.reply(502, 'TLS not configured');
  if (session.secure) return session.reply(503, 'Already secured');
  await session.reply(234, 'AUTH TLS successful');
  const raw = session.commandSocket;
  const secure = acceptTls(raw, context, session.server.limits.tlsHandshakeTimeoutMs);
  // Keep every listener (ours and ftp-srv's) on the raw socket: forward the secure socket's events.
  for (const event of ['data', 'timeout', 'end', 'close', 'drain', 'error'] as const) {
    secure.on(event, (...args: unknown[]) => raw.emit(event, ...args));
  }
  session.commandSocket = secure;
  session.secure = true;
}

async function pbsz(session: FtpSession, command: Command): Promise<void> {
  if (!session.secure) return session.reply(503, 'PBSZ requires AUTH first');
  session.bufferSize = 0;
  return session.reply(200, command.arg.trim() === '0' ? 'PBSZ=0' : 'PBSZ=0 (buffer size must be 0)');
}

async function prot(session: FtpSession, command: Command): Promise<void> {
  if (!session.secure) return session.reply(503, 'PROT requires AUTH first');
  const level = command.arg.trim().toUpperCase();
  if (level === 'C' || level === 'P') {
    session.dataProtection = level;
    return session.reply(200, `Protection level ${level}`);
  }
  return session.reply(536, 'Only PROT C and P are supported');
}

async function site(session: FtpSession, command: Command): Promise<void> {
  // No SITE subcommand is offered: CHMOD has no Dropbox meaning, and every other one would bypass
  // per-verb permissions (ftp-srv's SITE CHMOD ran under a read-only blacklist).
  if (/^HELP\b/i.test(command.arg)) return session.reply(214, 'No SITE commands are available');
  return session.reply(502, 'SITE command not implemented');
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
  fromFtpSrv('NOOP', { urgent: true }),
  fromFtpSrv('SYST'),
  fromFtpSrv('TYPE'),
  fromFtpSrv('MODE'),
  fromFtpSrv('STRU'),
  fromFtpSrv('ALLO'),
  fromFtpSrv('REST', { feat: ['REST STREAM'] }),
];
