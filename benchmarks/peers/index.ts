// The registry of peers a scale run can compare, in the order they run. Main thread.

import { dropftpNoWorkersPeer, dropftpWorkersPeer } from './dropftp.ts';
import { ftpSrvStockPeer } from './ftp-srv-stock.ts';
import { localboxDirectPeer } from './localbox-direct.ts';
import { pyftpdlibPeer } from './pyftpdlib.ts';
import type { PeerDef } from './types.ts';
import { vsftpdPeer } from './vsftpd.ts';

export const PEERS: readonly PeerDef[] = [dropftpWorkersPeer, dropftpNoWorkersPeer, ftpSrvStockPeer, vsftpdPeer, pyftpdlibPeer, localboxDirectPeer];

export function peerByName(name: string): PeerDef {
  const p = PEERS.find((x) => x.name === name);
  if (!p) throw new Error(`unknown server "${name}" (known: ${PEERS.map((x) => x.name).join(', ')})`);
  return p;
}
