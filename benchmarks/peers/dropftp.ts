// Peers: dropftp serve on its embedded local box, with the transfer workers on (the design) and
// off (`--no-workers`: every byte on the main thread, the design's own baseline). Started through
// the public CLI (`dropftp user add`, `dropftp serve`) with the ELU probe preloaded into the main
// thread. Main thread. Invariant: a flag the CLI does not offer makes prepare() say so, not guess;
// the connection caps (50 per address, 100 per user, 10,000 in all by default) are raised for the
// run, since the load generator logs every session in as one user from few loopback addresses.
// The storage is a local box this benchmark starts (the gateway reaches it as a Dropbox account
// with its own base URLs, through the credentials file), so that its calls are counted by the box
// itself (GET /admin/calls) and its CPU apart from the gateway's; the gateway's embedded box idles.

import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { saveAccount } from '../../src/auth/credentials-file.ts';
import { adminOf, startLocalBox } from '../../src/localbox/index.ts';
import { freePort, outputTail, readEluFile, run, startProcess, stopProcess, waitForListener } from './process-util.ts';
import type { BackendCalls, PeerDef } from './types.ts';

const BIN = fileURLToPath(new URL('../../bin/dropftp.mjs', import.meta.url));
const PROBE = fileURLToPath(new URL('./elu-probe.mjs', import.meta.url));
/** As bin/dropftp runs it: node under the malloc tuning (it execs, so the pid measured is node's). */
const TUNED_MALLOC = fileURLToPath(new URL('../../bin/with-tuned-malloc', import.meta.url));

async function serveHelp(): Promise<string> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, 'serve', '--help'], { timeout: 30_000 });
    return stdout + stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return (e.stdout ?? '') + (e.stderr ?? '');
  }
}

/** The Dropbox account name the bench user maps to: the benchmark's own local box. */
const BOX_ACCOUNT = 'bench-box';

function addUser(dataDir: string, usersFile: string, password: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [BIN, 'user', 'add', 'bench', '--password-stdin', '--account', BOX_ACCOUNT, '--data-dir', dataDir, '--users', usersFile], (err, _out, stderr) =>
      err ? reject(new Error(`dropftp user add: ${stderr || err.message}`)) : resolve(),
    );
    child.stdin?.end(`${password}\n`);
  });
}

function dropftpPeer(name: string, extraFlags: string[], description: string): PeerDef {
  return {
    name,
    description,
    scenarios: ['idle', 'storm', 'big', 'churn'],
    async prepare() {
      const help = await serveHelp();
      if (!/--listen/.test(help)) return 'dropftp serve is not available yet';
      for (const flag of extraFlags) if (!help.includes(flag)) return `dropftp serve has no ${flag} flag yet`;
      return null;
    },
    async start(ctx) {
      const help = await serveHelp();
      const capFlags = ['--limits-max-connections', '--limits-max-connections-per-address', '--limits-max-connections-per-user']
        .filter((flag) => help.includes(flag))
        .flatMap((flag) => [flag, '1000000']);
      const port = await freePort();
      const password = randomBytes(9).toString('base64url');
      const dataDir = join(ctx.workDir, 'data');
      const usersFile = join(ctx.workDir, 'users.yaml');
      await mkdir(dataDir, { recursive: true });
      const box = await startLocalBox({ dataDir: join(ctx.workDir, 'box'), ...(ctx.boxRateLimit ? { limits: { rateLimit: ctx.boxRateLimit } } : {}) });
      try {
        const account = await box.createAccount('bench');
        await saveAccount(join(dataDir, 'credentials.yaml'), BOX_ACCOUNT, {
          appKey: account.appKey,
          appSecret: account.appSecret,
          refreshToken: account.refreshToken,
          apiUrl: box.url,
          contentUrl: box.url,
        });
        await addUser(dataDir, usersFile, password);
      } catch (err) {
        await box.close();
        throw err;
      }
      const eluFile = join(ctx.workDir, 'elu.txt');
      const child = startProcess(
        TUNED_MALLOC,
        [process.execPath, ...(process.env.BENCH_GATEWAY_NODE_FLAGS ?? '').split(' ').filter(Boolean), ...(process.env.BENCH_GATEWAY_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_GATEWAY_CPU_PROF] : []), '--import', PROBE, BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--pasv-ports', `${ctx.pasvPorts[0]}-${ctx.pasvPorts[1]}`, '--users', usersFile, ...capFlags, ...extraFlags, ...(ctx.gatewayFlags ?? [])],
        // BENCH_GATEWAY_CPU_PROF=DIR: V8 CPU profiles of the gateway's threads are written there when it exits.
        // BENCH_GATEWAY_NODE_FLAGS='--flag ...': node or V8 flags for the gateway alone (an experiment's switch).
        // BENCH_GATEWAY_LOG=FILE: the gateway's output is appended there (for a run that must be explained).
        { env: { ...process.env, BENCH_ELU_FILE: eluFile }, ...(process.env.BENCH_GATEWAY_LOG ? { logTo: process.env.BENCH_GATEWAY_LOG } : {}) },
      );
      try {
        await waitForListener('127.0.0.1', port, 60_000, child);
      } catch (err) {
        await stopProcess(child);
        await box.close();
        throw new Error(`${name}: ${(err as Error).message}\n${outputTail(child)}`);
      }
      return {
        name,
        target: { kind: 'ftp', host: '127.0.0.1', port, user: 'bench', password },
        pid: child.pid!,
        backend: {
          pid: box.pid,
          calls: async () => ({
            ...(await adminOf(box).adminCall<BackendCalls>('GET', 'calls')),
            retryAfterWindows: await adminOf(box).adminCall<NonNullable<BackendCalls['retryAfterWindows']>>('GET', 'calls/retry-after-windows'),
          }),
          resetCalls: async () => void (await adminOf(box).adminCall('POST', 'calls/reset')),
          setRateLimit: async (spec) => void (await adminOf(box).setLimits({ rateLimit: spec })),
        },
        elu: () => readEluFile(eluFile),
        spoolFiles: () => {
          try {
            return readdirSync(join(dataDir, 'spool')).length;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
            throw err;
          }
        },
        notes: [...(ctx.gatewayFlags?.length ? [`${name}: serve ${ctx.gatewayFlags.join(' ')}`] : []), `${name}: RSS is the gateway process; PSS and CPU are its process tree (its own embedded local box idles: the storage is a local box the benchmark started, counted apart)`],
        close: async () => {
          await stopProcess(child, 15_000);
          await box.close();
        },
      };
    },
  };
}

export const dropftpWorkersPeer = dropftpPeer('dropftp', [], 'dropftp serve on the local box, transfer workers on');
export const dropftpNoWorkersPeer = dropftpPeer('dropftp-noworkers', ['--no-workers'], 'dropftp serve on the local box, --no-workers (every byte on the main thread)');
