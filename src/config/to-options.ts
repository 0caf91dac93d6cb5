// Maps the resolved configuration onto the service's options (src/server.ts DropftpOptions), one
// section per subsystem. Main thread, at start-up and on SIGHUP (limits). Invariant: every schema
// key is either mapped here or named in UNMAPPED_KEYS with the reason (a test checks that the two
// cover the schema), so an option can never be accepted and silently ignored.

import { join } from 'node:path';
import type { DropftpOptions } from '../server.ts';
import type { Logger } from '../log/logger.ts';
import type { BandwidthCap, LimitsOptions } from '../limits/index.ts';
import type { BandwidthCapConfig, DropftpConfig } from './types.ts';

/** Keys toDropftpOptions maps (kept next to the function; the schema test checks the cover). */
export const MAPPED_KEYS: readonly string[] = [
  'listen', 'dataDir', 'passivePorts', 'publicHost', 'usersFile', 'greeting',
  'engine.workers', 'engine.noWorkers', 'engine.memoryBudgetBytes', 'engine.maxCallsPerSecond', 'engine.maxRetryAfterSec', 'engine.appendMemoryBytes', 'engine.spoolBytes', 'engine.uploadLeadSec', 'engine.commitLingerMs',
  'session.idleTimeoutMs', 'session.dataConnectTimeoutMs', 'session.unusedDataTimeoutMs', 'session.stallTimeoutMs',
  'session.maxLineBytes', 'session.maxQueuedCommands', 'session.maxLoginFailures', 'session.loginTimeoutMs', 'session.tlsHandshakeTimeoutMs',
  'limits.maxConnections', 'limits.maxConnectionsPerAddress', 'limits.maxConnectionsPerUser', 'limits.ipv6PrefixBits',
  'limits.loginDelayBaseMs', 'limits.loginDelayMaxMs', 'limits.banAfterFailures', 'limits.failureWindowMs', 'limits.banMs',
  'limits.maxTrackedAddresses', 'limits.bandwidth.downloadBytesPerSec', 'limits.bandwidth.uploadBytesPerSec', 'limits.userBandwidth',
  'tls.certFile', 'tls.keyFile', 'tls.required', 'tls.implicitPort', 'tls.requireSessionReuse',
  'proxyProtocol.enabled', 'proxyProtocol.trustedProxies', 'proxyProtocol.headerTimeoutMs',
  'localbox.rateLimit', 'localbox.writeLock',
  'admin.listen', 'admin.tokenFile', 'admin.hosts', 'admin.requireToken', 'credentialsFile',
];

/** Keys consumed outside DropftpOptions (by the CLI itself), with where. */
export const CLI_KEYS: Readonly<Record<string, string>> = {
  shutdownGraceMs: 'src/cli/serve.ts (SIGTERM)',
  'log.level': 'src/cli/serve.ts (createLogger)',
  'log.format': 'src/cli/serve.ts (createLogger)',
};

/** Keys the service does not consume yet: `serve` refuses a non-default value for them. */
export const UNMAPPED_KEYS: Readonly<Record<string, string>> = {
};

export function toDropftpOptions(config: DropftpConfig, log: Logger): DropftpOptions {
  return {
    // service
    dataDir: config.dataDir,
    host: config.listen.host,
    port: config.listen.port,
    pasvPorts: config.passivePorts,
    publicHost: config.publicHost,
    ...(config.usersFile ? { usersFile: config.usersFile } : {}),
    greeting: config.greeting,
    log,
    // engine
    engine: {
      ...(config.engine.workers !== null ? { workers: config.engine.workers } : {}),
      onlyMainThread: config.engine.noWorkers,
      memoryBudgetBytes: config.engine.memoryBudgetBytes,
      maxCallsPerSecond: config.engine.maxCallsPerSecond,
      maxRetryAfterSec: config.engine.maxRetryAfterSec,
      appendMemoryBytes: config.engine.appendMemoryBytes,
      spoolBytes: config.engine.spoolBytes,
      // Swept at start: files a killed gateway left behind.
      spoolDir: join(config.dataDir, 'spool'),
      commitLingerMs: config.engine.commitLingerMs,
      uploadLeadSec: config.engine.uploadLeadSec,
      log: log.child({ component: 'engine' }),
    },
    // FTP sessions (and the server-wide connection cap)
    limits: { ...config.session, maxConnections: config.limits.maxConnections },
    // connection caps, login delay and bans, bandwidth
    access: accessOptions(config.limits),
    // FTPS
    tls: config.tls.certFile && config.tls.keyFile ? { certFile: config.tls.certFile, keyFile: config.tls.keyFile, required: config.tls.required, implicitPort: config.tls.implicitPort, requireSessionReuse: config.tls.requireSessionReuse } : null,
    // behind a load balancer
    proxyProtocol: config.proxyProtocol.enabled ? { trustedProxies: [...config.proxyProtocol.trustedProxies], headerTimeoutMs: config.proxyProtocol.headerTimeoutMs } : null,
    // the embedded local box: Dropbox's limits
    localbox: { limits: { rateLimit: config.localbox.rateLimit, writeLock: config.localbox.writeLock } },
    // metrics, health and the status page (its token: admin.tokenFile or DROPFTP_ADMIN_TOKEN, read at start)
    admin: config.admin.listen ? { ...config.admin.listen, tokenFile: config.admin.tokenFile, hosts: [...config.admin.hosts], requireToken: config.admin.requireToken } : null,
    // Dropbox accounts
    credentialsFile: config.credentialsFile,
  };
}

function cap(value: BandwidthCapConfig): BandwidthCap {
  const out: BandwidthCap = {};
  if (value.downloadBytesPerSec !== null) out.downloadBytesPerSec = value.downloadBytesPerSec;
  if (value.uploadBytesPerSec !== null) out.uploadBytesPerSec = value.uploadBytesPerSec;
  return out;
}

export function accessOptions(limits: DropftpConfig['limits']): LimitsOptions {
  const { bandwidth, userBandwidth, ...counts } = limits;
  return { ...counts, bandwidth: cap(bandwidth), userBandwidth: Object.fromEntries(Object.entries(userBandwidth).map(([user, value]) => [user, cap(value)])) };
}
