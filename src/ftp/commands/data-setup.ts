// PASV, EPSV, PORT, EPRT: set up the session's one data connector. Main thread. Invariants: the
// previous connector is closed before a new one opens; a passive listener accepts only the control
// connection's peer and PORT/EPRT connect only to it; PASV announces the control connection's own
// local address, or publicHost for clients outside loopback; every path replies, even when no
// port is free.

import { isIPv4 } from 'node:net';
import { lookup } from 'node:dns/promises';
import { DropftpError } from '../../errors.ts';
import type { FtpSession } from '../session-types.ts';
import { ActiveConnector } from '../data/active.ts';
import { normalizeAddress } from '../data/connector.ts';
import { PassiveConnector } from '../data/passive.ts';
import type { Command, CommandSpec } from './types.ts';

async function openPassive(session: FtpSession): Promise<PassiveConnector> {
  // RFC 2428 4: after EPSV ALL, any other data setup command is refused; 503 as for PORT/EPRT.
  if (session.epsvAll && session.lastDataSetup !== 'EPSV') throw new DropftpError('DROPFTP_ERR_BAD_SEQUENCE', 'PASV after EPSV ALL', { clientDetail: 'EPSV ALL in effect' });
  session.closeConnector(); // one pending listener per session, freed before the next is opened
  const { server } = session;
  const connector = await PassiveConnector.open({
    pool: server.passivePorts,
    host: session.controlLocalAddress,
    peerAddress: session.controlPeerAddress,
    secureContext: session.dataProtection === 'P' ? server.secureContext : null,
    requireSessionReuse: server.requireTlsSessionReuse,
    unusedTimeoutMs: server.limits.unusedDataTimeoutMs,
    onRefused: (address) => server.emit('client-error', { connection: session, context: 'dataServer', error: new Error(`refused data connection from ${address}`) }),
  });
  if (session.isClosed) {
    connector.close();
    throw new DropftpError('DROPFTP_ERR_CLIENT_GONE');
  }
  session.setConnector(connector);
  return connector;
}

function isLoopback(address: string): boolean {
  const a = normalizeAddress(address);
  return a.startsWith('127.') || a === '::1';
}

async function announcedIPv4(session: FtpSession): Promise<string | null> {
  const { publicHost } = session.server;
  if (publicHost && !isLoopback(session.controlPeerAddress)) {
    if (isIPv4(publicHost)) return publicHost;
    return (await lookup(publicHost, { family: 4 })).address;
  }
  const local = normalizeAddress(session.controlLocalAddress);
  return isIPv4(local) ? local : null;
}

async function pasv(session: FtpSession): Promise<void> {
  session.lastDataSetup = 'PASV';
  const host = await announcedIPv4(session);
  if (!host) throw new DropftpError('DROPFTP_ERR_NO_DATA_CONNECTION', 'PASV on IPv6', { clientDetail: 'PASV needs IPv4; use EPSV' });
  const connector = await openPassive(session);
  const port = connector.port;
  return session.reply(227, `Entering Passive Mode (${host.replace(/\./g, ',')},${port >> 8},${port & 255})`);
}

async function epsv(session: FtpSession, command: Command): Promise<void> {
  const arg = command.arg.trim().toUpperCase();
  if (arg === 'ALL') {
    session.epsvAll = true;
    return session.reply(200, 'EPSV ALL accepted');
  }
  const family = isIPv4(normalizeAddress(session.controlLocalAddress)) ? '1' : '2';
  if (arg !== '' && arg !== family) throw new DropftpError('DROPFTP_ERR_NETWORK_PROTOCOL', `EPSV ${arg.slice(0, 8)}`, { clientDetail: family });
  session.lastDataSetup = 'EPSV';
  const connector = await openPassive(session);
  return session.reply(229, `Entering Extended Passive Mode (|||${connector.port}|)`);
}

function openActive(session: FtpSession, host: string, port: number, family: 4 | 6): Promise<void> {
  if (session.epsvAll) throw new DropftpError('DROPFTP_ERR_BAD_SEQUENCE', 'active mode after EPSV ALL', { clientDetail: 'EPSV ALL in effect' });
  session.closeConnector();
  let connector: ActiveConnector;
  try {
    connector = new ActiveConnector({
      host,
      port,
      family,
      peerAddress: session.controlPeerAddress,
      localAddress: undefined,
      secureContext: session.dataProtection === 'P' ? session.server.secureContext : null,
      requireSessionReuse: session.server.requireTlsSessionReuse,
      unusedTimeoutMs: session.server.limits.unusedDataTimeoutMs,
    });
  } catch (err) {
    if (err instanceof DropftpError && err.code === 'DROPFTP_ERR_PERMISSION') throw new DropftpError('DROPFTP_ERR_BAD_COMMAND', 'active mode to another host', { clientDetail: 'data connections go only to the client address' });
    throw err;
  }
  session.setConnector(connector);
  return session.reply(200, `${session.lastDataSetup} command successful`);
}

async function port(session: FtpSession, command: Command): Promise<void> {
  session.lastDataSetup = 'PORT';
  const parts = command.arg.trim().split(',');
  const bytes = parts.map((part) => (/^\d{1,3}$/.test(part.trim()) ? Number(part) : NaN));
  if (bytes.length !== 6 || bytes.some((b) => !(b >= 0 && b <= 255))) throw new DropftpError('DROPFTP_ERR_BAD_COMMAND', 'bad PORT', { clientDetail: 'PORT h1,h2,h3,h4,p1,p2' });
  const host = bytes.slice(0, 4).join('.');
  return openActive(session, host, bytes[4]! * 256 + bytes[5]!, 4);
}

async function eprt(session: FtpSession, command: Command): Promise<void> {
  session.lastDataSetup = 'EPRT';
  const arg = command.arg.trim();
  const delimiter = arg[0];
  const fields = delimiter ? arg.split(delimiter) : [];
  if (fields.length !== 5 || fields[0] !== '' || fields[4] !== '') throw new DropftpError('DROPFTP_ERR_BAD_COMMAND', 'bad EPRT', { clientDetail: 'EPRT |proto|address|port|' });
  const [, proto, host, portText] = fields as [string, string, string, string, string];
  const family = proto === '1' ? 4 : proto === '2' ? 6 : 0;
  if (!family) throw new DropftpError('DROPFTP_ERR_NETWORK_PROTOCOL', `EPRT family ${proto.slice(0, 8)}`, { clientDetail: '1,2' });
  if (!/^\d{1,5}$/.test(portText)) throw new DropftpError('DROPFTP_ERR_BAD_COMMAND', 'bad EPRT port', { clientDetail: 'bad port' });
  return openActive(session, host, Number(portText), family);
}

export const DATA_SETUP_COMMANDS: CommandSpec[] = [
  { name: 'PASV', syntax: 'PASV', description: 'Enter passive mode (IPv4)', handler: pasv },
  { name: 'EPSV', syntax: 'EPSV [1|2|ALL]', description: 'Enter extended passive mode (RFC 2428)', handler: epsv },
  { name: 'PORT', syntax: 'PORT h1,h2,h3,h4,p1,p2', description: 'Active mode: connect to the client', handler: port },
  { name: 'EPRT', syntax: 'EPRT |proto|address|port|', description: 'Extended active mode (RFC 2428)', handler: eprt },
];
