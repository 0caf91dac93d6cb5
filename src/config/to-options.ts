// Maps the resolved configuration onto the service's options (src/server.ts DropftpOptions), one
// section per subsystem. Main thread, at start-up and on SIGHUP (limits). Invariant: every schema
// key is either mapped here or named in UNMAPPED_KEYS with the reason (a test checks that the two
// cover the schema), so an option can never be accepted and silently ignored.

import type { DropftpOptions } from '../server.ts';
import type { Logger } from '../log/logger.ts';
import type { DropftpConfig } from './types.ts';

/** Keys toDropftpOptions maps (kept next to the function; the schema test checks the cover). */
export const MAPPED_KEYS: readonly string[] = [
  'listen', 'dataDir', 'passivePorts', 'publicHost', 'usersFile', 'greeting',
  'engine.workers', 'engine.noWorkers', 'engine.memoryBudgetBytes', 'engine.maxRequestsPerAccount', 'engine.commitLingerMs',
  'session.idleTimeoutMs', 'session.dataConnectTimeoutMs', 'session.unusedDataTimeoutMs', 'session.stallTimeoutMs',
  'session.maxLineBytes', 'session.maxQueuedCommands', 'session.maxLoginFailures', 'limits.maxConnections',
];

/** Keys consumed outside DropftpOptions (by the CLI itself), with where. */
export const CLI_KEYS: Readonly<Record<string, string>> = {
  shutdownGraceMs: 'src/cli/serve.ts (SIGTERM)',
  'log.level': 'src/cli/serve.ts (createLogger)',
  'log.format': 'src/cli/serve.ts (createLogger)',
};

/** Keys the service does not consume yet: `serve` refuses a non-default value for them. */
export const UNMAPPED_KEYS: Readonly<Record<string, string>> = {
  'limits.maxConnectionsPerAddress': 'limits wiring',
  'limits.maxConnectionsPerUser': 'limits wiring',
  'limits.ipv6PrefixBits': 'limits wiring',
  'limits.loginDelayBaseMs': 'limits wiring',
  'limits.loginDelayMaxMs': 'limits wiring',
  'limits.banAfterFailures': 'limits wiring',
  'limits.failureWindowMs': 'limits wiring',
  'limits.banMs': 'limits wiring',
  'limits.maxTrackedAddresses': 'limits wiring',
  'limits.bandwidth.downloadBytesPerSec': 'limits wiring',
  'limits.bandwidth.uploadBytesPerSec': 'limits wiring',
  'limits.userBandwidth': 'limits wiring',
  'tls.certFile': 'FTPS wiring',
  'tls.keyFile': 'FTPS wiring',
  'tls.required': 'FTPS wiring',
  'tls.implicitPort': 'FTPS wiring',
  'proxyProtocol.enabled': 'PROXY protocol wiring',
  'proxyProtocol.trustedProxies': 'PROXY protocol wiring',
  'proxyProtocol.headerTimeoutMs': 'PROXY protocol wiring',
  admin: 'metrics listener wiring',
  credentialsFile: 'Dropbox accounts wiring',
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
      maxRequestsPerAccount: config.engine.maxRequestsPerAccount,
      commitLingerMs: config.engine.commitLingerMs,
    },
    // FTP sessions (and the server-wide connection cap)
    limits: { ...config.session, maxConnections: config.limits.maxConnections },
  };
}
