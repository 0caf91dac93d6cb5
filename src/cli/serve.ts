// `dropftp serve`: parses its flags, starts the service (src/server.ts), prints where it listens
// (and, on the first run, the new user's password, once), and runs until SIGINT/SIGTERM, then
// closes gracefully. Main thread. Invariant: bad flags exit 2 with a message naming the flag.

import { resolve } from 'node:path';
import { startDropftp } from '../server.ts';
import type { PortRange } from '../ftp/data/passive-ports.ts';

const USAGE = `usage: dropftp serve [--listen HOST:PORT] [--data-dir DIR] [--pasv-ports A-B] [--public-host H] [--users FILE]

  --listen HOST:PORT   control connection address (default 0.0.0.0:2121; [::]:2121 for IPv6)
  --data-dir DIR       local box storage, accounts and users (default ./data)
  --pasv-ports A-B     passive data ports (default: any free port)
  --public-host H      address announced in PASV replies to non-local clients (for NAT)
  --users FILE         users file (default DIR/users.yaml)
`;

export interface ServeFlags {
  host: string;
  port: number;
  dataDir: string;
  pasvPorts: PortRange | null;
  publicHost: string | null;
  usersFile: string | undefined;
}

export function parseServeFlags(argv: string[]): ServeFlags {
  const flags: ServeFlags = { host: '0.0.0.0', port: 2121, dataDir: './data', pasvPorts: null, publicHost: null, usersFile: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [name, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new UsageError(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case '--listen': {
        const v = value();
        const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(v);
        if (!m) throw new UsageError(`--listen: expected HOST:PORT, got "${v}"`);
        flags.host = m[1] ?? (m[2] || '0.0.0.0');
        flags.port = Number(m[3]);
        if (flags.port > 65535) throw new UsageError(`--listen: port ${flags.port} out of range`);
        break;
      }
      case '--data-dir':
        flags.dataDir = value();
        break;
      case '--pasv-ports': {
        const v = value();
        const m = /^(\d+)-(\d+)$/.exec(v);
        const min = Number(m?.[1]);
        const max = Number(m?.[2]);
        if (!m || min < 1 || max > 65535 || min > max) throw new UsageError(`--pasv-ports: expected A-B with 1 <= A <= B <= 65535, got "${v}"`);
        flags.pasvPorts = { min, max };
        break;
      }
      case '--public-host':
        flags.publicHost = value();
        break;
      case '--users':
        flags.usersFile = value();
        break;
      case '--help':
      case '-h':
        throw new UsageError('');
      default:
        throw new UsageError(`unknown option ${arg}`);
    }
  }
  return flags;
}

export class UsageError extends Error {}

export async function serveCommand(argv: string[]): Promise<number> {
  let flags: ServeFlags;
  try {
    flags = parseServeFlags(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    (err.message ? process.stderr : process.stdout).write((err.message ? `dropftp serve: ${err.message}\n` : '') + USAGE);
    return err.message ? 2 : 0;
  }
  const service = await startDropftp({
    dataDir: resolve(flags.dataDir),
    host: flags.host,
    port: flags.port,
    pasvPorts: flags.pasvPorts,
    publicHost: flags.publicHost,
    usersFile: flags.usersFile ? resolve(flags.usersFile) : undefined,
  });
  const shown = service.host.includes(':') ? `[${service.host}]` : service.host;
  process.stdout.write(`dropftp: FTP server listening on ftp://${shown}:${service.port} (data in ${resolve(flags.dataDir)})\n`);
  if (service.createdUser) {
    process.stdout.write(
      `dropftp: created FTP user "${service.createdUser.name}" with password: ${service.createdUser.password}\n` +
        `dropftp: (shown only this once; add users with \`dropftp user add NAME\`)\n`,
    );
  }
  await new Promise<void>((resolveStop) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolveStop();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  process.stdout.write('dropftp: shutting down\n');
  await service.close();
  return 0;
}
