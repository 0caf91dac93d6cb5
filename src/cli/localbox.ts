// `dropftp localbox`: runs the local box in the foreground, or manages its accounts.
// Runs on the CLI process's main thread (this process is the server; the FTP server never embeds it
// this way — it uses startLocalBox, which runs it in a child process). Returns an exit code.
//   dropftp localbox --listen HOST:PORT --data-dir DIR [--tls-cert F --tls-key F] [--faults JSON|@file] [--admin-token T]
//                    [--rate-limit RATE[:BURST]] [--write-lock[=HOLD_MS]]
//   dropftp localbox account add NAME --data-dir DIR

import { readFileSync } from 'node:fs';
import { resolveConfig } from '../localbox/config.ts';
import { parseRateLimit, parseWriteLock } from '../localbox/limits.ts';
import { startServer } from '../localbox/server.ts';
import { Accounts } from '../localbox/store/accounts.ts';
import { openDb } from '../localbox/store/db.ts';
import type { FaultSpec, LocalBoxOptions } from '../localbox/types.ts';

const USAGE = `usage:
  dropftp localbox --listen HOST:PORT --data-dir DIR [--tls-cert FILE --tls-key FILE] [--faults JSON|@FILE] [--admin-token TOKEN]
                   [--rate-limit RATE[:BURST]] [--write-lock[=HOLD_MS]]
  dropftp localbox account add NAME --data-dir DIR
  dropftp localbox --help

  --rate-limit RATE[:BURST]  Dropbox's per-account call-rate limit: RATE calls/s, BURST at once (default
                             ceil(RATE)); every call counts, refused ones too (429 too_many_requests).
  --write-lock[=HOLD_MS]     Dropbox's namespace write lock: each commit, move, copy, delete or
                             create_folder holds it HOLD_MS (default 50); others meanwhile get
                             too_many_write_operations. Both are off by default; POST /admin/limits changes them.
`;

/** Flags that take no value (--write-lock takes one only as --write-lock=MS or a number after it). */
const NO_VALUE = new Set(['help', 'write-lock']);

function flags(argv: string[]): { positional: string[]; opts: Map<string, string> } {
  const positional: string[] = [];
  const opts = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h') opts.set('help', '');
    else if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) opts.set(a.slice(2, eq), a.slice(eq + 1));
      else if (NO_VALUE.has(a.slice(2))) {
        const v = argv[i + 1];
        const takes = a === '--write-lock' && v !== undefined && /^\d+$/.test(v);
        opts.set(a.slice(2), takes ? v : '');
        if (takes) i++;
      } else {
        const v = argv[i + 1];
        if (v === undefined || v.startsWith('--')) throw new Error(`option ${a} needs a value`);
        opts.set(a.slice(2), v);
        i++;
      }
    } else positional.push(a);
  }
  return { positional, opts };
}

function parseFaults(spec: string): FaultSpec {
  const text = spec.startsWith('@') ? readFileSync(spec.slice(1), 'utf8') : spec;
  try {
    return JSON.parse(text) as FaultSpec;
  } catch {
    throw new Error('--faults: not valid JSON');
  }
}

function limitFlags(opts: Map<string, string>): NonNullable<LocalBoxOptions['limits']> {
  const limits: NonNullable<LocalBoxOptions['limits']> = {};
  const named = <T>(flag: string, fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      throw new Error(`${flag}: ${(err as Error).message}`);
    }
  };
  const rate = opts.get('rate-limit');
  if (rate !== undefined) limits.rateLimit = named('--rate-limit', () => parseRateLimit(rate));
  const lock = opts.get('write-lock');
  if (lock !== undefined) limits.writeLock = named('--write-lock', () => parseWriteLock(lock));
  return limits;
}

export async function localboxCommand(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof flags>;
  try {
    parsed = flags(argv);
  } catch (err) {
    process.stderr.write(`dropftp localbox: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const { positional, opts } = parsed;
  if (positional[0] === 'help' || opts.has('help')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const dataDir = opts.get('data-dir');
  if (!dataDir) {
    process.stderr.write(`dropftp localbox: --data-dir is required\n${USAGE}`);
    return 2;
  }
  if (positional[0] === 'account') {
    if (positional[1] !== 'add' || !positional[2]) {
      process.stderr.write(USAGE);
      return 2;
    }
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dataDir, { recursive: true });
    const db = openDb(dataDir);
    try {
      process.stdout.write(`${JSON.stringify(new Accounts(db).create(positional[2]), null, 2)}\n`);
    } finally {
      db.close();
    }
    return 0;
  }
  if (positional.length) {
    process.stderr.write(`dropftp localbox: unexpected "${positional[0]}"\n${USAGE}`);
    return 2;
  }
  const options: LocalBoxOptions = { dataDir };
  try {
    const listen = opts.get('listen') ?? '127.0.0.1:0';
    const m = /^(.*):(\d+)$/.exec(listen);
    if (!m) throw new Error('--listen must be HOST:PORT');
    options.host = m[1]!.replace(/^\[(.*)\]$/, '$1');
    options.port = Number(m[2]);
    const cert = opts.get('tls-cert');
    const key = opts.get('tls-key');
    if ((cert === undefined) !== (key === undefined)) throw new Error('--tls-cert and --tls-key go together');
    if (cert && key) options.tls = { cert, key };
    const faults = opts.get('faults');
    if (faults) options.faults = parseFaults(faults);
    const adminToken = opts.get('admin-token');
    if (adminToken) options.adminToken = adminToken;
    options.limits = limitFlags(opts);
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
    return 1;
  }
}
