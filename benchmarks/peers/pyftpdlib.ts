// Peer: pyftpdlib (Debian python3-pyftpdlib) on local disk, started from pyftpdlib-server.py with
// Debian's own /usr/bin/python3 (a pyenv python on PATH would not see the package). Main thread.
// Invariant: no connection limit (max_cons = 0), so the run measures the server, not its config.

import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDebPackages, freePort, outputTail, startProcess, stopProcess, waitForListener } from './process-util.ts';
import type { PeerDef } from './types.ts';

const SCRIPT = fileURLToPath(new URL('./pyftpdlib-server.py', import.meta.url));
const PYTHON = '/usr/bin/python3';

export const pyftpdlibPeer: PeerDef = {
  name: 'pyftpdlib',
  description: 'pyftpdlib (Debian python3-pyftpdlib), local disk, one process',
  scenarios: ['idle', 'storm', 'big', 'churn'],
  prepare: () => ensureDebPackages(['python3-pyftpdlib']),
  async start(ctx) {
    const port = await freePort();
    const password = randomBytes(9).toString('base64url');
    const root = join(ctx.workDir, 'files');
    await import('node:fs/promises').then((fs) => fs.mkdir(root, { recursive: true }));
    const child = startProcess(PYTHON, [SCRIPT, '127.0.0.1', String(port), root, 'bench', password, String(ctx.pasvPorts[0]), String(ctx.pasvPorts[1])]);
    try {
      await waitForListener('127.0.0.1', port, 20_000, child);
    } catch (err) {
      await stopProcess(child);
      throw new Error(`pyftpdlib: ${(err as Error).message}\n${outputTail(child)}`);
    }
    return {
      name: 'pyftpdlib',
      target: { kind: 'ftp', host: '127.0.0.1', port, user: 'bench', password },
      pid: child.pid!,
      elu: () => null,
      notes: ['pyftpdlib: python event loop, no ELU; max_cons=0'],
      close: () => stopProcess(child),
    };
  },
};
