// Runs `dropftp serve` as a real process for the status page tests and reads what it prints: the
// start line (FTP and admin addresses), the first user's password, and every JSON log line. Test
// code only.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/dropftp.mjs', import.meta.url));

export interface Served {
  child: ChildProcess;
  ftpPort: number;
  admin: string;
  user: string;
  password: string;
  /** JSON log lines so far. */
  logs: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

export async function serve(dataDir: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Served> {
  const child = spawn(process.execPath, [BIN, 'serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--log-format', 'json', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const logs: Array<Record<string, unknown>> = [];
  let text = '';
  let pending = '';
  const started = await new Promise<{ listen: string; admin: string; user: string; password: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start line: ${text}`)), 60_000);
    let start: { listen: string; admin: string } | null = null;
    const look = (d: Buffer): void => {
      text += d;
      pending += d;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith('{')) {
          const record = JSON.parse(line) as Record<string, unknown>;
          logs.push(record);
          if (record.event === 'start') start = record as unknown as { listen: string; admin: string };
        }
      }
      const created = /created FTP user "([^"]+)" with password: (\S+)/.exec(text);
      if (start && created) {
        clearTimeout(timer);
        resolve({ ...start, user: created[1]!, password: created[2]! });
      }
    };
    child.stdout!.on('data', look);
    child.stderr!.on('data', look);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited ${code}: ${text}`));
    });
  });
  return {
    child,
    ftpPort: Number(new URL(started.listen).port),
    admin: started.admin,
    user: started.user,
    password: started.password,
    logs,
    exited,
    // SIGTERM (graceful); a server still up 30 s later is killed, so a failed test never hangs.
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
