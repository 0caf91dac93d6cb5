// `dropftp serve`: loads the configuration (defaults < YAML file < DROPFTP_* env < flags), starts
// the service (src/server.ts), prints where it listens (and, on the first run, the new user's
// password, once, on stdout and never in the logs), and runs until signalled. Main thread.
// Invariants: bad configuration exits 2 naming each bad option and its source; SIGTERM/SIGINT drain
// (running transfers may finish for shutdownGraceMs, the rest are aborted, nothing partial is
// committed) and exit 0, a second one aborts at once; SIGHUP reloads the users file and limits.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../config/load.ts';
import { usage } from '../config/usage.ts';
import { CLI_KEYS, UNMAPPED_KEYS, accessOptions, toDropftpOptions } from '../config/to-options.ts';
import type { LoadedConfig } from '../config/types.ts';
import { createLogger, type Logger } from '../log/logger.ts';
import { startLocalBox, type LocalBox } from '../localbox/index.ts';
import type { Dropftp } from '../server.ts';
import { limitHeapGrowth } from '../util/heap-growth.ts';
import { UsageError } from './args.ts';
import { parseServeArgs, type ServeArgs } from './serve-flags.ts';

export const SERVE_USAGE_HEAD = `usage: dropftp serve [--config FILE] [options]

Every option is also a YAML key of FILE and a DROPFTP_* environment variable;
flags win over the environment, which wins over the file. Common ones:
  --listen HOST:PORT   control connection address (default 0.0.0.0:2121)
  --data-dir DIR       local box storage, accounts and users (default ./data)
  --pasv-ports A-B     passive data ports (default: any free port)
  --public-host H      address announced in PASV replies (for NAT)
  --users FILE         users file (default DIR/users.yaml)
  --no-workers         every transfer on the main thread (benchmark baseline)
  --log-level LEVEL    trace, debug, info, warn, error, fatal, silent
`;

/** Exit code (0 after --help, 2 and the problems), or the loaded configuration and its flags. */
function load(argv: string[]): { loaded: LoadedConfig; flags: string[] } | number {
  let args: ServeArgs;
  try {
    args = parseServeArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`dropftp serve: ${err.message}\ndropftp serve: see \`dropftp serve --help\`\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(SERVE_USAGE_HEAD + '\nAll options:\n' + usage());
    return 0;
  }
  let loaded: LoadedConfig;
  try {
    loaded = loadConfig({ argv: args.argv });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(err.problems.map((p) => `dropftp serve: ${p}\n`).join('') + 'dropftp serve: see `dropftp serve --help`\n');
    return 2;
  }
  // An option accepted by the schema but not yet consumed must not be silently ignored.
  const ignored = [...loaded.sources].filter(([key, source]) => source !== 'default' && Object.hasOwn(UNMAPPED_KEYS, key) && !Object.hasOwn(CLI_KEYS, key));
  if (ignored.length) {
    process.stderr.write(ignored.map(([key, source]) => `dropftp serve: ${key} (from ${source}): not supported by this build yet (${UNMAPPED_KEYS[key]})\n`).join(''));
    return 2;
  }
  return { loaded, flags: args.argv };
}

function banner(service: Dropftp, loaded: LoadedConfig, log: Logger): void {
  const shown = service.host.includes(':') ? `[${service.host}]` : service.host;
  const where = `ftp://${shown}:${service.port}`;
  // Plain lines on stdout for people and scripts (tests wait for "listening on ftp://…").
  process.stdout.write(`dropftp: FTP server listening on ${where} (data in ${loaded.config.dataDir})\n`);
  log.info({ event: 'start', listen: where, config: loaded.file, dataDir: loaded.config.dataDir, workers: service.engine.options.onlyMainThread ? 0 : service.engine.options.workers, admin: service.admin ? `http://${service.admin.host.includes(':') ? `[${service.admin.host}]` : service.admin.host}:${service.admin.port}` : null }, `listening on ${where}`);
  if (service.createdUser) {
    process.stdout.write(
      `dropftp: created FTP user "${service.createdUser.name}" with password: ${service.createdUser.password}\n` +
        `dropftp: (shown only this once; add users with \`dropftp user add NAME\`)\n`,
    );
  }
}

/**
 * SIGHUP: the users file again, and the configuration's `limits.*` (caps, login delay and bans,
 * bandwidth) from the same sources as at start. Other changed options are reported as needing a
 * restart; a bad configuration changes nothing.
 */
async function reload(service: Dropftp, argv: string[], running: LoadedConfig, log: Logger): Promise<LoadedConfig> {
  let next: LoadedConfig;
  try {
    next = loadConfig({ argv });
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
    log.error({ event: 'reload', result: 'bad configuration', problems }, 'reload refused; the running configuration stays');
    return running;
  }
  const changed = [...next.sources.keys()].filter((key) => JSON.stringify(valueAt(next.config, key)) !== JSON.stringify(valueAt(running.config, key)));
  const applied: string[] = [];
  try {
    const { users } = await service.reload();
    applied.push('users');
    const limits = changed.filter((key) => key.startsWith('limits.'));
    if (limits.length) {
      service.reconfigureAccess(accessOptions(next.config.limits));
      applied.push(...limits);
    }
    const needsRestart = changed.filter((key) => !applied.includes(key));
    log.info({ event: 'reload', users, applied, needsRestart }, needsRestart.length ? 'reloaded; some changes need a restart' : 'reloaded');
    // Options that need a restart keep their running value (and are compared with it next time).
    return needsRestart.length ? running : next;
  } catch (err) {
    log.error({ event: 'reload', err }, 'reload failed; the running users and limits stay');
    return running;
  }
}

function valueAt(config: object, key: string): unknown {
  return key.split('.').reduce<unknown>((node, part) => (node as Record<string, unknown> | undefined)?.[part], config);
}

export async function serveCommand(rawArgv: string[]): Promise<number> {
  const start = load(rawArgv);
  if (typeof start === 'number') return start;
  const { loaded, flags: argv } = start;
  const { config } = loaded;
  limitHeapGrowth();
  const log = createLogger(config.log);
  let service: Dropftp;
  // A stop signal during start-up is kept and acted on once the service is up (no half-started exit).
  const early: NodeJS.Signals[] = [];
  const onEarly = (signal: NodeJS.Signals): void => void early.push(signal);
  process.on('SIGINT', onEarly);
  process.on('SIGTERM', onEarly);
  process.on('SIGHUP', onEarly);
  // The local box child starts while the server's modules load (they are most of the start-up).
  try {
    mkdirSync(config.dataDir, { recursive: true });
  } catch (err) {
    // A data directory that is a file (or under one), or that cannot be made: one line, no stack.
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'EEXIST' || code === 'ENOTDIR' ? 'it, or a folder above it, is a file' : (err as Error).message;
    process.off('SIGINT', onEarly);
    process.off('SIGTERM', onEarly);
    process.off('SIGHUP', onEarly);
    process.stderr.write(`dropftp serve: dataDir ${config.dataDir}: not a usable directory (${why})\n`);
    return 2;
  }
  const options = toDropftpOptions(config, log);
  const limits = options.localbox?.limits;
  const localBox: Promise<LocalBox> = startLocalBox({ dataDir: join(config.dataDir, 'localbox'), ...(limits ? { limits } : {}) });
  localBox.catch(() => {}); // reported by startDropftp, which awaits it
  try {
    const { startDropftp } = await import('../server.ts');
    service = await startDropftp({ ...options, localBox });
  } catch (err) {
    void localBox.then((box) => box.close()).catch(() => {});
    process.off('SIGINT', onEarly);
    process.off('SIGTERM', onEarly);
    process.off('SIGHUP', onEarly);
    log.fatal({ event: 'start-failed', err }, 'dropftp could not start');
    process.stderr.write(`dropftp serve: ${(err as Error).message}\n`);
    // Another server owns the data directory: a usage error, like a bad option (issue 18).
    return (err as { code?: unknown }).code === 'DROPFTP_ERR_DATA_DIR_LOCKED' ? 2 : 1;
  }
  // onEarly stays installed until the real handlers are: a signal's disposition falls back to the
  // default (exit by signal) whenever a signal has no listener, even between two statements.
  banner(service, loaded, log);
  let current = loaded;
  let reloading = Promise.resolve();
  const onHup = (): void => {
    reloading = reloading.then(async () => {
      current = await reload(service, argv, current, log);
    });
  };
  process.on('SIGHUP', onHup);
  process.off('SIGHUP', onEarly);
  await new Promise<void>((resolveStop) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        // A second signal: abort every transfer now (nothing partial is committed).
        log.warn({ event: 'shutdown', signal }, 'second signal: aborting running transfers');
        void service.destroy();
        return;
      }
      stopping = true;
      log.info({ event: 'shutdown', signal, graceMs: config.shutdownGraceMs, running: service.transfers.running }, 'shutting down: no new connections, running transfers may finish');
      void service.close(config.shutdownGraceMs).then(
        ({ aborted }) => {
          log.info({ event: 'stopped', aborted }, aborted ? `stopped; ${aborted} transfer(s) aborted at the end of the grace period` : 'stopped');
          resolveStop();
        },
        (err: unknown) => {
          log.error({ event: 'stopped', err }, 'error while stopping');
          resolveStop();
        },
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    process.off('SIGINT', onEarly);
    process.off('SIGTERM', onEarly);
    for (const signal of early) (signal === 'SIGHUP' ? onHup : () => stop(signal))();
  });
  process.off('SIGHUP', onHup);
  // Every handle should be closed by now; if one lingers, do not hang the service manager.
  setTimeout(() => process.exit(0), 5000).unref();
  return 0;
}
