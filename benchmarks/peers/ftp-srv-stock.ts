// Peer: stock ftp-srv 4.6.3 (the library dropftp builds on) with its default local-disk
// FileSystem, in its own Node process with the ELU probe preloaded. Main thread.
// Invariant: the same Node and tsx as dropftp, so the difference is the server, not the runtime.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { freePort, outputTail, readEluFile, startProcess, stopProcess, waitForListener } from './process-util.ts';
import type { PeerDef } from './types.ts';

const MAIN = fileURLToPath(new URL('./ftp-srv-stock-main.ts', import.meta.url));
const PROBE = fileURLToPath(new URL('./elu-probe.mjs', import.meta.url));

export const ftpSrvStockPeer: PeerDef = {
  name: 'ftp-srv',
  description: 'stock ftp-srv 4.6.3, default FileSystem on local disk',
  scenarios: ['idle', 'storm', 'big', 'churn'],
  prepare: async () => null,
  async start(ctx) {
    const port = await freePort();
    const password = randomBytes(9).toString('base64url');
    const root = join(ctx.workDir, 'files');
    await mkdir(root, { recursive: true });
    const eluFile = join(ctx.workDir, 'elu.txt');
    const child = startProcess(
      process.execPath,
      ['--import', 'tsx', '--import', PROBE, MAIN, String(port), root, 'bench', password, String(ctx.pasvPorts[0]), String(ctx.pasvPorts[1])],
      { env: { ...process.env, BENCH_ELU_FILE: eluFile } },
    );
    try {
      await waitForListener('127.0.0.1', port, 30_000, child);
    } catch (err) {
      await stopProcess(child);
      throw new Error(`ftp-srv: ${(err as Error).message}\n${outputTail(child)}`);
    }
    return {
      name: 'ftp-srv',
      target: { kind: 'ftp', host: '127.0.0.1', port, user: 'bench', password },
      pid: child.pid!,
      elu: () => readEluFile(eluFile),
      notes: ['ftp-srv: stock 4.6.3, bunyan level error'],
      close: () => stopProcess(child),
    };
  },
};
