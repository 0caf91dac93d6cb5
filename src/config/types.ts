// The resolved configuration: every option filled in (defaults applied), typed and frozen. Main
// thread. Invariant: its shape mirrors schema.ts key by key (test/config/schema.test.ts walks the
// schema and finds every key here), so code reads `config.limits.banMs`, never a string key.

import type { RateLimit } from '../localbox/limits.ts';
import type { HostPort, PortRangeValue } from './values.ts';

export interface BandwidthCapConfig {
  downloadBytesPerSec: number | null;
  uploadBytesPerSec: number | null;
}

export interface DropftpConfig {
  listen: HostPort;
  dataDir: string;
  usersFile: string | null;
  passivePorts: PortRangeValue | null;
  publicHost: string | null;
  greeting: string;
  shutdownGraceMs: number;
  engine: {
    workers: number | null;
    noWorkers: boolean;
    memoryBudgetBytes: number;
    maxCallsPerSecond: number | null;
    maxRetryAfterSec: number;
    appendMemoryBytes: number;
    spoolBytes: number | null;
    uploadLeadSec: number;
    commitLingerMs: number;
  };
  session: {
    idleTimeoutMs: number;
    dataConnectTimeoutMs: number;
    unusedDataTimeoutMs: number;
    stallTimeoutMs: number;
    maxLineBytes: number;
    maxQueuedCommands: number;
    maxLoginFailures: number;
    loginTimeoutMs: number;
    tlsHandshakeTimeoutMs: number;
  };
  limits: {
    maxConnections: number;
    maxConnectionsPerAddress: number;
    maxConnectionsPerUser: number;
    ipv6PrefixBits: number;
    loginDelayBaseMs: number;
    loginDelayMaxMs: number;
    banAfterFailures: number;
    failureWindowMs: number;
    banMs: number;
    maxTrackedAddresses: number;
    bandwidth: BandwidthCapConfig;
    userBandwidth: Record<string, BandwidthCapConfig>;
  };
  tls: { certFile: string | null; keyFile: string | null; required: boolean; implicitPort: number | null; requireSessionReuse: boolean };
  proxyProtocol: { enabled: boolean; headerTimeoutMs: number; trustedProxies: string[] };
  localbox: { rateLimit: RateLimit | null; writeLock: number | null };
  admin: { listen: HostPort | null; tokenFile: string | null; hosts: string[]; requireToken: boolean };
  log: { level: LogLevel; format: 'auto' | 'json' | 'pretty' };
  credentialsFile: string | null;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** Where the value of each option came from (for `config check` and start-up logs). */
export type ConfigSource = 'default' | 'file' | 'env' | 'flag';

export interface LoadedConfig {
  config: Readonly<DropftpConfig>;
  /** Option key → where its value came from. */
  sources: ReadonlyMap<string, ConfigSource>;
  /** The file read, if any (absolute path). */
  file: string | null;
}
