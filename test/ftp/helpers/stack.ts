// The whole service for storage tests: local box (child process), transfer engine, users file and
// FTP server, in a temp data dir, through the same startDropftp() that `dropftp serve` runs.
// Test code only.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDropftp, type Dropftp, type DropftpOptions } from '../../../src/server.ts';
import type { SessionLimits } from '../../../src/ftp/server.ts';
import type { PortRange } from '../../../src/ftp/data/passive-ports.ts';

export interface Stack extends Dropftp {
  user: string;
  password: string;
  dataDir: string;
  stop(): Promise<void>;
}

export interface StackOptions extends Pick<DropftpOptions, 'access' | 'tls' | 'proxyProtocol'> {
  /** Engine options beside the worker count (memory budget …). */
  engine?: DropftpOptions['engine'];
  limits?: Partial<SessionLimits>;
  pasvPorts?: PortRange | null;
  engineWorkers?: number;
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const dataDir = await mkdtemp(join(tmpdir(), 'dropftp-ftp-test-'));
  const service = await startDropftp({
    dataDir,
    host: '127.0.0.1',
    port: 0,
    engineWorkers: options.engineWorkers ?? 1,
    ...(options.engine ? { engine: options.engine } : {}),
    limits: options.limits,
    pasvPorts: options.pasvPorts ?? null,
    ...(options.access ? { access: options.access } : {}),
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.proxyProtocol ? { proxyProtocol: options.proxyProtocol } : {}),
  });
  const { name, password } = service.createdUser!;
  return {
    ...service,
    user: name,
    password,
    dataDir,
    stop: async () => {
      await service.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
