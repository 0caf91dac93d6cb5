// Test helpers: runs the real `dropftp serve` (bin/dropftp.mjs) as a child process, waits for it to
// listen, collects its stdout (banner lines and JSON log records) and stderr. Test code only.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/dropftp.mjs', import.meta.url));

export interface ServeProcess {
  child: ChildProcess;
  port: number;
  /** Set on the first run of a data dir (the banner's new user). */
  user: string;
  password: string;
  stdout(): string;
  stderr(): string;
  /** The JSON log records written so far. */
  records(): Record<string, unknown>[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `dropftp ARGS` to its end (for config check, serve with bad configuration …). */
export function runDropftp(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...cleanEnv(), ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`dropftp ${args.join(' ')} did not end: ${stdout}${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      // 'exit' may come before the pipes drain.
      setImmediate(() => resolve({ code, stdout, stderr }));
    });
  });
}

/** The environment without DROPFTP_* variables of the shell that runs the tests. */
export function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('DROPFTP_')));
}

export function startServe(args: string[], env: NodeJS.ProcessEnv = {}, firstRun = true, command: string[] = [process.execPath, BIN]): Promise<ServeProcess> {
  const child = spawn(command[0]!, [...command.slice(1), 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...cleanEnv(), ...env } });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => setImmediate(() => resolve({ code, signal }))));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`dropftp serve did not start: ${out}${err}`));
    }, 30_000);
    void exited.then(({ code }) => reject(new Error(`dropftp serve exited ${code}: ${out}${err}`)));
    const check = (): void => {
      const listening = /listening on ftp:\/\/[^ ]*:(\d+) \(/.exec(out);
      if (!listening || (firstRun && !out.includes('shown only this once'))) return;
      clearTimeout(timer);
      child.stdout!.off('data', check);
      const created = /created FTP user "([^"]+)" with password: (\S+)/.exec(out);
      resolve({
        child,
        port: Number(listening[1]),
        user: created?.[1] ?? '',
        password: created?.[2] ?? '',
        stdout: () => out,
        stderr: () => err,
        records: () =>
          out
            .split('\n')
            .filter((line) => line.startsWith('{'))
            .map((line) => JSON.parse(line) as Record<string, unknown>),
        exited,
      });
    };
    child.stdout!.on('data', check);
  });
}

export async function waitFor<T>(probe: () => T | undefined | null | false, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
