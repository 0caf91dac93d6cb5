// Helpers shared by the peers: free loopback ports, waiting for a TCP listener, Debian package
// installation, starting and stopping a server process, reading ELU probe files. Main thread.
// Invariants: stop() escalates SIGTERM → SIGKILL and resolves only when the process is gone.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { promisify } from 'node:util';
import type { EluSample } from './types.ts';

export const run = promisify(execFile);

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on host:port. */
export async function waitForListener(host: string, port: number, timeoutMs: number, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`server exited (code ${child.exitCode}) before listening on ${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function debInstalled(name: string): Promise<boolean> {
  try {
    const { stdout } = await run('dpkg-query', ['-W', '-f=${Status}', name]);
    return stdout.includes('install ok installed');
  } catch {
    return false;
  }
}

/** Installs missing Debian packages with apt-get (root only); returns null or why it could not. */
export async function ensureDebPackages(packages: string[]): Promise<string | null> {
  const missing: string[] = [];
  for (const p of packages) if (!(await debInstalled(p))) missing.push(p);
  if (missing.length === 0) return null;
  if (process.getuid?.() !== 0) return `not root: cannot install ${missing.join(', ')}`;
  process.stderr.write(`installing ${missing.join(', ')} with apt-get...\n`);
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    await run('apt-get', ['update', '-qq'], { env });
    await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env });
    return null;
  } catch (err) {
    return `apt-get install ${missing.join(' ')} failed: ${(err as Error).message.split('\n')[0]}`;
  }
}

export function startProcess(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; logTo?: string } = {}): ChildProcess {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Keep the last few KiB of output for error messages; never let a full pipe block the server.
  let tail = '';
  const keep = (d: Buffer): void => {
    tail = (tail + d.toString()).slice(-4096);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  if (options.logTo) {
    const log = createWriteStream(options.logTo, { flags: 'a' });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
  }
  (child as ChildProcess & { outputTail(): string }).outputTail = () => tail;
  return child;
}

export function outputTail(child: ChildProcess): string {
  return (child as ChildProcess & { outputTail?: () => string }).outputTail?.() ?? '';
}

export function stopProcess(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Reads the lines "<epoch ms> <utilization>" that elu-probe.mjs appends. */
export function readEluFile(file: string): EluSample[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [t, u] = line.split(' ');
      return { tMs: Number(t), utilization: Number(u) };
    });
}
