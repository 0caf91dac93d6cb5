// `dropftp localbox`: runs the local box in the foreground, or manages its accounts.
// Runs on the CLI process's main thread (this process is the server; the FTP server never embeds it
// this way — it uses startLocalBox, which runs it in a child process). Returns an exit code: 2 for
// a bad command line or a data directory held by another local box.

import { mkdirSync, readFileSync } from 'node:fs';
import { resolveConfig } from '../localbox/config.ts';
import { startServer } from '../localbox/server.ts';
import { Accounts } from '../localbox/store/accounts.ts';
import { openDb } from '../localbox/store/db.ts';
import type { FaultSpec, LocalBoxOptions } from '../localbox/types.ts';
import { UsageError, flagLines, parseCommand, runCommand, type FlagTable } from './args.ts';

/**
 * The flags of `dropftp localbox`, one entry each (src/cli/args.ts). A new flag is one more entry
 * here plus the few lines below that turn its value into a LocalBoxOptions field.
 */
export const LOCALBOX_FLAGS = {
  listen: { type: 'string', valueName: 'HOST:PORT', doc: 'address to listen on (default 127.0.0.1:0: any free port)' },
  'data-dir': { type: 'string', valueName: 'DIR', doc: 'storage, accounts and database (required); one local box per directory' },
  'tls-cert': { type: 'string', valueName: 'FILE', doc: 'PEM certificate chain: serve HTTPS (with --tls-key)' },
  'tls-key': { type: 'string', valueName: 'FILE', doc: 'PEM private key of --tls-cert' },
  faults: { type: 'string', valueName: 'JSON|@FILE', doc: 'fault injection rules (see README, The local box)' },
  'admin-token': { type: 'string', valueName: 'TOKEN', doc: 'bearer token of the /admin routes (default: random, printed)' },
} as const satisfies FlagTable;

const ACCOUNT_FLAGS = { 'data-dir': LOCALBOX_FLAGS['data-dir'] } as const satisfies FlagTable;

const USAGE = `usage:
  dropftp localbox --data-dir DIR [--listen HOST:PORT] [--tls-cert FILE --tls-key FILE] [--faults JSON|@FILE] [--admin-token TOKEN]
  dropftp localbox account add NAME --data-dir DIR

${flagLines(LOCALBOX_FLAGS)}`;

function parseFaults(spec: string): FaultSpec {
  const text = spec.startsWith('@') ? readFileSync(spec.slice(1), 'utf8') : spec;
  try {
    return JSON.parse(text) as FaultSpec;
  } catch {
    throw new Error('--faults: not valid JSON');
  }
}

export function localboxCommand(argv: string[]): Promise<number> {
  return runCommand('dropftp localbox', USAGE, () => (argv[0] === 'account' ? accountCommand(argv.slice(1)) : serveBox(argv)));
}

/** `dropftp localbox account add NAME --data-dir DIR`. */
async function accountCommand(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(argv, ACCOUNT_FLAGS, { maxPositionals: 2 });
  if (help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const dataDir = values['data-dir'] as string | undefined;
  if (positionals[0] !== 'add' || !positionals[1]) throw new UsageError('expected: account add NAME');
  if (!dataDir) throw new UsageError('--data-dir is required');
  mkdirSync(dataDir, { recursive: true });
  const db = openDb(dataDir);
  try {
    process.stdout.write(`${JSON.stringify(new Accounts(db).create(positionals[1]), null, 2)}\n`);
  } finally {
    db.close();
  }
  return 0;
}

async function serveBox(argv: string[]): Promise<number> {
  const { values, help } = parseCommand(argv, LOCALBOX_FLAGS);
  if (help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const opts = values as { [K in keyof typeof LOCALBOX_FLAGS]?: string };
  const dataDir = opts['data-dir'];
  if (!dataDir) throw new UsageError('--data-dir is required');
  const options: LocalBoxOptions = { dataDir };
  const listen = opts.listen ?? '127.0.0.1:0';
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m) throw new UsageError('--listen must be HOST:PORT');
  options.host = m[1]!.replace(/^\[(.*)\]$/, '$1');
  options.port = Number(m[2]);
  const cert = opts['tls-cert'];
  const key = opts['tls-key'];
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (cert && key) options.tls = { cert, key };
  try {
    if (opts.faults) options.faults = parseFaults(opts.faults);
    if (opts['admin-token']) options.adminToken = opts['admin-token'];
    const config = resolveConfig(options);
    const running = await startServer(config);
    process.stdout.write(`${JSON.stringify({ url: running.url, adminToken: config.adminToken, dataDir: config.dataDir })}\n`);
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        void running.close().then(resolve);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    return 0;
  } catch (err) {
    process.stderr.write(`dropftp localbox: ${(err as Error).message}\n`);
    // Another local box owns the directory: exit 2 like a usage error, naming it (issue 18).
    return (err as { code?: unknown }).code === 'DROPFTP_ERR_DATA_DIR_LOCKED' ? 2 : 1;
  }
}
