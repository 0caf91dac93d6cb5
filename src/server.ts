// Wiring of `dropftp serve`: the embedded local box (a child process), the transfer engine, the
// users file and the FTP server, started in that order and closed in reverse. Main thread.
// Invariants: the first run creates a local box account (kept in <dataDir>/accounts.yaml) and, when
// the users file holds no user, one FTP user whose password is returned once and never stored in
// clear; access tokens are refreshed at start; close(graceMs) is graceful: stops accepting, lets
// running transfers finish (new ones get 421) for up to graceMs, then aborts the rest; destroy(err)
// is abortive: every transfer aborted at once (nothing half-uploaded commits); both then stop the
// engine and the box; reload() re-reads the users file without dropping sessions.

import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { closeSharedAgent } from './dropbox/rpc.ts';
import { toDropftpError } from './errors.ts';
import { readCredentialsFile } from './auth/credentials-file.ts';
import { TokenManager } from './auth/token-manager.ts';
import type { StatusPageOptions } from './admin/index.ts';
import type { AdminServer, HealthReport } from './metrics/admin-server.ts';
import { ServiceMetrics, transferResult } from './metrics/service-metrics.ts';
import { AccountRegistry } from './ftp/fs/account-registry.ts';
import { openUserFs } from './ftp/fs/open-user-fs.ts';
import { ResumeStore } from './ftp/fs/resume-store.ts';
import type { TransferAdapter } from './ftp/fs/transfer-adapter.ts';
import { FtpServer, type Authenticator, type ProxyProtocolOptions, type SessionLimits } from './ftp/server.ts';
import { tlsOptionsFromFiles } from './ftp/tls-context.ts';
import { BandwidthLimits, NO_LIMITS, throttleSessionFs, type LimitsOptions } from './limits/index.ts';
import { buildCommandTable } from './ftp/commands/index.ts';
import { TransferWatch } from './lifecycle/transfer-watch.ts';
import { attachSessionLog, loggedAuthenticator, logTransfer } from './log/session-log.ts';
import { silentLog, type Logger } from './log/logger.ts';
import type { EngineOptions } from './transfer/options.ts';
import type { PortRange } from './ftp/data/passive-ports.ts';
import { startLocalBox, type LocalBox, type LocalBoxOptions } from './localbox/index.ts';
import { SyncRegistry } from './sync/index.ts';
import { TransferEngine, type UploadResumeToken } from './transfer/index.ts';
import { hashPassword } from './users/password.ts';
import { UserDirectory } from './users/user-directory.ts';
import { readUsersFile, writeUsersFile } from './users/users-file.ts';

export interface DropftpOptions {
  dataDir: string;
  host?: string;
  port?: number;
  pasvPorts?: PortRange | null;
  publicHost?: string | null;
  /** Default <dataDir>/users.yaml. */
  usersFile?: string;
  engineWorkers?: number;
  /** Further engine options (memory budget, onlyMainThread for the no-workers baseline …). */
  engine?: EngineOptions;
  limits?: Partial<SessionLimits>;
  /**
   * Connection caps (server, address, user), failed-login delay and bans, per-user bandwidth caps
   * (src/limits/options.ts, the `limits.*` configuration keys). Default: none at all (NO_LIMITS);
   * `dropftp serve` passes its configuration, whose defaults are LIMITS_DEFAULTS.
   */
  access?: LimitsOptions;
  /** FTPS (AUTH TLS, PBSZ, PROT) with this certificate; null/absent: plain FTP only. */
  tls?: DropftpTlsOptions | null;
  /** PROXY protocol v1/v2 required on the control listeners (behind HAProxy); null/absent: off. */
  proxyProtocol?: ProxyProtocolOptions | null;
  greeting?: string;
  /** Session, login and transfer lines go here (default: nothing is logged). */
  log?: Logger;
  /** The local box of <dataDir>/localbox, already starting (the CLI starts its child while the rest of the server loads). */
  localBox?: Promise<LocalBox>;
  /** Dropbox accounts from `dropftp auth`. Default <dataDir>/credentials.yaml. */
  credentialsFile?: string | null;
  /** The embedded local box: Dropbox's limits (`localbox.rateLimit`, `localbox.writeLock`); off when absent. */
  localbox?: { limits?: LocalBoxOptions['limits'] };
  /** Metrics, health and status page listener (GET /metrics, /healthz, /, /status.json); off when absent. */
  admin?: ({ host: string; port: number } & Omit<StatusPageOptions, 'host'>) | null;
}

export interface DropftpTlsOptions {
  /** PEM certificate chain file (`tls.certFile`). */
  certFile: string;
  /** PEM private key file (`tls.keyFile`). */
  keyFile: string;
  /** Refuse USER/PASS (530) until the control connection is TLS (`tls.required`). */
  required?: boolean;
  /** Implicit-FTPS listener port, TLS from the first byte (`tls.implicitPort`, usually 990; 0: any free port; null: off). */
  implicitPort?: number | null;
  /** Refuse (425) a PROT P data connection that does not resume the control connection's TLS session (`tls.requireSessionReuse`, vsftpd's require_ssl_reuse). */
  requireSessionReuse?: boolean;
}

export interface CloseResult {
  /** Transfers still running when the grace period ended (aborted: nothing of theirs committed). */
  aborted: number;
}

export interface Dropftp {
  ftp: FtpServer;
  box: LocalBox;
  engine: TransferEngine;
  host: string;
  port: number;
  /** The implicit-FTPS listener's port, when there is one. */
  implicitTlsPort: number | null;
  /** Set on the run that created the first user: its name and clear password (shown once). */
  createdUser: { name: string; password: string } | null;
  /** The login check the FTP server uses (tests build extra servers with other limits on it). */
  authenticate: Authenticator;
  /** Users (re-read when the users file changes) and the storage accounts they use. */
  users: UserDirectory;
  accounts: AccountRegistry;
  /** Short-lived access tokens of every account (refreshed before expiry and after a 401). */
  tokens: TokenManager;
  metrics: ServiceMetrics;
  /** The admin listener's address when `admin` was set. */
  admin: { host: string; port: number } | null;
  /** Watches transfer commands (running count, drain). */
  transfers: TransferWatch;
  /** Re-reads the users file (SIGHUP); sessions stay; a bad file throws and the old users stay. */
  reload(): Promise<{ users: number }>;
  /**
   * New `limits.*` (SIGHUP): caps, login delay and bans, bandwidth. Counts, bans and running
   * sessions stay; throws DROPFTP_ERR_CONFIG naming the option on a bad value (old limits stay).
   */
  reconfigureAccess(access: LimitsOptions): void;
  /**
   * Graceful: stops accepting, lets running transfers finish for up to graceMs (default 30 s; new
   * ones get 421), aborts the rest, then stops everything.
   */
  close(graceMs?: number): Promise<CloseResult>;
  /** Abortive: aborts every transfer now (nothing half-uploaded commits), then stops everything. */
  destroy(err?: Error): Promise<void>;
}

const LOCAL_ACCOUNT = 'local';
const DEFAULT_CLOSE_GRACE_MS = 30_000;

async function ensureFirstUser(usersFile: string): Promise<{ name: string; password: string } | null> {
  const file = await readUsersFile(usersFile);
  if (Object.keys(file.users).length > 0) return null;
  const password = randomBytes(12).toString('base64url');
  file.users['ftp'] = { password: await hashPassword(password), account: LOCAL_ACCOUNT, root: '/' };
  await writeUsersFile(usersFile, file);
  return { name: 'ftp', password };
}

export async function startDropftp(options: DropftpOptions): Promise<Dropftp> {
  const dataDir = options.dataDir;
  await mkdir(dataDir, { recursive: true });
  const usersFile = options.usersFile ?? join(dataDir, 'users.yaml');
  const createdUser = await ensureFirstUser(usersFile);
  const log = options.log ?? silentLog();
  const users = await UserDirectory.open({ path: usersFile, onError: (err) => log.error({ event: 'users-file', err }, 'users file rejected; previous users stay') });

  // Read (and its mode checked) before anything starts: a bad file stops the start-up at once.
  const credentialsFile = options.credentialsFile ?? join(dataDir, 'credentials.yaml');
  await readCredentialsFile(credentialsFile);
  const box = await (options.localBox ?? startLocalBox({ dataDir: join(dataDir, 'localbox'), ...(options.localbox?.limits ? { limits: options.localbox.limits } : {}) }));
  const metrics = new ServiceMetrics();
  if (options.admin) metrics.expose();
  const tokens = new TokenManager({ onRefresh: metrics.onRefresh, onRequest: metrics.rpcObserver.request });
  let admin: AdminServer | null = null;
  let engine: TransferEngine | null = null;
  // Set once the FTP listener starts binding: a failed start closes it (after the bind settled).
  let listener: { ftp: FtpServer; listening: Promise<unknown> } | null = null;
  // The feed's call starts go through the engine's per-account pacer (read when a cache is made, after
  // the engine started).
  const sync = new SyncRegistry({ pacerFor: (name) => engine?.pacerFor(name) ?? null });
  try {
    engine = await TransferEngine.start({ ...options.engine, ...(options.engineWorkers ? { workers: options.engineWorkers } : {}) }, { deferWorkers: true });
    const running = engine;
    const accounts = new AccountRegistry({
      box,
      dataDir,
      engine: running,
      sync,
      tokens,
      credentials: async () => (await readCredentialsFile(credentialsFile)).accounts,
      rpcObserver: metrics.rpcObserver,
      warn: (message) => log.warn({ event: 'aside-journal' }, message),
    });
    metrics.attachEngine(() => running.stats());
    // The status page first: a bad admin token stops the start-up before any listener opens.
    // Loaded only when configured: a server without the admin listener never loads its modules.
    const status = options.admin ? new (await import('./admin/index.ts')).StatusPage(options.admin) : null;
    running.onCommitBatch((entries) => {
      metrics.commitBatchSize.observe({}, entries);
      status?.commitBatch(entries);
    });
    // Every account the users file names: tokens now, directory caches listing in the background.
    // Awaited below, together with the FTP listener (a login meanwhile waits for its account's store).
    const named = new Set([LOCAL_ACCOUNT, ...[...users.users.values()].flatMap((u) => [u.account, ...u.mounts.map((m) => m.account)])]);
    const accountsReady = Promise.all([...named].map((name) => accounts.get(name)));
    accountsReady.catch(() => {}); // rethrown where awaited
    // Resume tokens pass through the FTP layer untouched (opaque but for their offset).
    const transfers: TransferAdapter = {
      openDownload: (name, path, o) => running.openDownload(name, path, o),
      openUpload: (name, path, o) => running.openUpload(name, path, { ...o, resume: o.resume as UploadResumeToken | undefined }),
    };
    const resumes = new ResumeStore();
    const bandwidth = new BandwidthLimits(options.access ?? NO_LIMITS);
    const authenticate: Authenticator = async (login) => {
      const { username, password } = login;
      try {
        const user = await users.authenticate(username, password);
        const result = await openUserFs(user, accounts, transfers, resumes);
        metrics.login(true);
        const fs = throttleSessionFs(result.fs, username, bandwidth);
        return { ...result, fs: status ? status.observeFs(fs, login.session.id) : fs };
      } catch (err) {
        metrics.login(false);
        throw err;
      }
    };
    const tls = options.tls ?? null;
    const transfersWatch = new TransferWatch((record) => {
      logTransfer(log, record);
      metrics.transfer(record.direction, transferResult(record.result === 'ok' ? null : record.result), record.bytes, record.durationMs / 1000);
      status?.transferEnded(record);
    });
    const ftp = new FtpServer({
      commands: status ? status.wrapCommands(transfersWatch.wrap(buildCommandTable())) : transfersWatch.wrap(buildCommandTable()),
      ...(options.greeting ? { greeting: options.greeting } : {}),
      host: options.host ?? '0.0.0.0',
      port: options.port ?? 2121,
      pasvPorts: options.pasvPorts ?? null,
      publicHost: options.publicHost ?? null,
      ...options.limits,
      access: options.access ?? NO_LIMITS,
      tls: tls ? tlsOptionsFromFiles({ tlsCertFile: tls.certFile, tlsKeyFile: tls.keyFile }) : null,
      requireTls: tls?.required === true,
      requireTlsSessionReuse: tls?.requireSessionReuse === true,
      implicitTlsPort: tls?.implicitPort ?? null,
      proxyProtocol: options.proxyProtocol ?? null,
      authenticate: loggedAuthenticator(authenticate, log),
    });
    const detachLog = attachSessionLog(ftp, log);
    metrics.attachConnections(() => ftp.connectionCount);
    ftp.on('connect', () => metrics.connectionsTotal.inc());
    // Many sessions: their transfers will need more than one worker; boot them before the burst.
    ftp.on('connect', ({ newConnectionCount }: { newConnectionCount: number }) => running.expectSessions(newConnectionCount));
    const listening = ftp.listen();
    listener = { ftp, listening };
    const [address] = await Promise.all([listening, accountsReady]);
    running.warm(); // the first worker boots now that the listener is up (a transfer before this starts it)
    const page = status?.attach(ftp, () => running.stats(), log.child({ component: 'status-page' })) ?? null;
    if (options.admin) {
      const { AdminServer } = await import('./metrics/admin-server.ts');
      admin = new AdminServer({
        ...(page ? { routes: (req, res, path) => page.routes.handle(req, res, path) } : {}),
        host: options.admin.host,
        port: options.admin.port,
        metrics: () => metrics.render(),
        health: async (): Promise<HealthReport> => {
          // Healthy: the FTP listener is up and every account in use answers users/get_current_account.
          const checks: Record<string, string> = { ftp: ftp.listening ? 'ok' : 'not listening' };
          await Promise.all(tokens.names().map(async (name) => {
            const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer in 5 s')), 5000).unref());
            checks[`account:${name}`] = await Promise.race([accounts.get(name).then((store) => store.rpc.currentAccount()), timeout]).then(
              () => 'ok',
              (err: Error) => err.message,
            );
          }));
          return { ok: Object.values(checks).every((v) => v === 'ok'), checks };
        },
      });
      await admin.listen();
    }
    const adminAddress = admin?.address ?? null;
    const startedAdmin = admin;
    const started = engine;
    let closing: Promise<void> | null = null;
    const destroy = (err?: Error): Promise<void> =>
      (closing ??= (async () => {
        await ftp.destroy(err === undefined ? undefined : toDropftpError(err, 'DROPFTP_ERR_SHUTTING_DOWN'));
        bandwidth.close();
        detachLog();
        accounts.close();
        await sync.close();
        await started.close();
        await startedAdmin?.close();
        page?.detach();
        tokens.close();
        metrics.close();
        await closeSharedAgent();
        await box.close();
      })());
    return {
      ftp,
      box,
      engine: started,
      host: address.address,
      port: address.port,
      implicitTlsPort: ftp.implicitTlsAddress?.port ?? null,
      createdUser,
      authenticate,
      transfers: transfersWatch,
      users,
      accounts,
      tokens,
      metrics,
      admin: adminAddress ? { host: adminAddress.address, port: adminAddress.port } : null,
      reload: () => users.reload(),
      reconfigureAccess: (access) => {
        ftp.access.reconfigure(access);
        bandwidth.reconfigure(access);
      },
      close: async (graceMs = DEFAULT_CLOSE_GRACE_MS) => {
        transfersWatch.drain();
        // Stop listening now; sessions stay open (a new transfer command gets 421) until the end.
        ftp.stopListening();
        const finished = await transfersWatch.idle(graceMs);
        const aborted = finished ? 0 : transfersWatch.running;
        await destroy();
        return { aborted };
      },
      destroy,
    };
  } catch (err) {
    if (listener) {
      await listener.listening.catch(() => {});
      await listener.ftp.destroy().catch(() => {});
    }
    tokens.close();
    metrics.close();
    await admin?.close().catch(() => {});
    await sync.close().catch(() => {});
    await engine?.destroy().catch(() => {});
    await box.close().catch(() => {});
    throw err;
  }
}
