// Peer: the local box itself over HTTP (files/download, files/upload, upload sessions), with no
// FTP and no gateway in between: the floor of dropftp's overhead. Main thread.
// Invariant: the same local box code and data layout that dropftp serve runs on.

import { join } from 'node:path';
import { adminOf, startLocalBox } from '../../src/localbox/index.ts';
import type { PeerDef } from './types.ts';

export const localboxDirectPeer: PeerDef = {
  name: 'localbox-http',
  description: 'the local box downloaded/uploaded directly over HTTP (no FTP, no gateway)',
  scenarios: ['storm', 'big'],
  prepare: async () => null,
  async start(ctx) {
    const box = await startLocalBox({ dataDir: join(ctx.workDir, 'box') });
    const account = await box.createAccount('bench');
    return {
      name: 'localbox-http',
      target: { kind: 'http', url: box.url, accessToken: account.accessToken },
      pid: box.pid,
      backend: {
        pid: box.pid,
        calls: () => adminOf(box).adminCall('GET', 'calls'),
        resetCalls: async () => void (await adminOf(box).adminCall('POST', 'calls/reset')),
      },
      elu: () => null,
      notes: ['localbox-http: one fresh TCP connection per request, like an FTP data connection; a lean client on net (since 2026-12-07; node:http before)'],
      close: () => box.close(),
    };
  },
};
