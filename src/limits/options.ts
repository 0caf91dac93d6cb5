// Options of the limits module (connection caps, login failure delay and bans, bandwidth caps):
// all optional, one defaults object, a resolved fully-filled frozen type. Main thread, at start-up.
// Invariant: a bad value throws DROPFTP_ERR_CONFIG naming the option; 0 / Infinity mean "no cap".

import { DropftpError } from '../errors.ts';

export interface BandwidthCap {
  /** Bytes per second for everything this user downloads (RETR), all sessions together. */
  downloadBytesPerSec?: number;
  /** Bytes per second for everything this user uploads (STOR/APPE), all sessions together. */
  uploadBytesPerSec?: number;
}

export interface LimitsOptions {
  /** Connections to the whole server (default 10,000). */
  maxConnections?: number;
  /** Connections from one address (IPv4 host, or IPv6 prefix of `ipv6PrefixBits`; default 50). */
  maxConnectionsPerAddress?: number;
  /** Logged-in sessions of one user (default 100). */
  maxConnectionsPerUser?: number;
  /** IPv6 clients are counted per prefix of this many bits (default 64: one subscriber). */
  ipv6PrefixBits?: number;
  /** First failed login of an address is answered after this delay; it doubles per failure (default 500). */
  loginDelayBaseMs?: number;
  /** Cap of that growing delay (default 8000). */
  loginDelayMaxMs?: number;
  /** Failures of one address within `failureWindowMs` that ban it (default 10). */
  banAfterFailures?: number;
  /** A failure is forgotten this long after the address's last failure (default 15 min). */
  failureWindowMs?: number;
  /** How long a ban lasts (default 15 min). */
  banMs?: number;
  /** Addresses whose failures and bans are remembered; the least recently seen are forgotten first (default 100,000). */
  maxTrackedAddresses?: number;
  /** Bandwidth caps for every user (default none). */
  bandwidth?: BandwidthCap;
  /** Per-user caps, replacing `bandwidth` for the users named. */
  userBandwidth?: Record<string, BandwidthCap>;
}

export interface ResolvedLimits {
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
  readonly maxConnectionsPerUser: number;
  readonly ipv6PrefixBits: number;
  readonly loginDelayBaseMs: number;
  readonly loginDelayMaxMs: number;
  readonly banAfterFailures: number;
  readonly failureWindowMs: number;
  readonly banMs: number;
  readonly maxTrackedAddresses: number;
  readonly bandwidth: Readonly<BandwidthCap>;
  readonly userBandwidth: Readonly<Record<string, Readonly<BandwidthCap>>>;
}

export const LIMITS_DEFAULTS = {
  maxConnections: 10_000,
  maxConnectionsPerAddress: 50,
  maxConnectionsPerUser: 100,
  ipv6PrefixBits: 64,
  loginDelayBaseMs: 500,
  loginDelayMaxMs: 8_000,
  banAfterFailures: 10,
  failureWindowMs: 15 * 60_000,
  banMs: 15 * 60_000,
  maxTrackedAddresses: 100_000,
} as const;

function fail(name: string, why: string): never {
  throw new DropftpError('DROPFTP_ERR_CONFIG', `limits.${name}: ${why}`);
}

function count(name: string, value: number | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  if (value === Infinity || value === 0) return value === 0 && min > 0 ? fail(name, `must be ≥ ${min}`) : Infinity;
  if (!Number.isInteger(value) || value < min) fail(name, `must be an integer ≥ ${min} (0 or Infinity: no cap), got ${String(value)}`);
  return value;
}

function ms(name: string, value: number | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min) fail(name, `must be an integer number of milliseconds ≥ ${min}, got ${String(value)}`);
  return value;
}

function rate(name: string, value: number | undefined): number | undefined {
  if (value === undefined || value === 0 || value === Infinity) return undefined;
  if (!Number.isFinite(value) || value < 1024) fail(name, `must be ≥ 1024 bytes per second (0: no cap), got ${String(value)}`);
  return value;
}

function cap(name: string, value: BandwidthCap | undefined): BandwidthCap {
  if (value === undefined) return Object.freeze({});
  if (typeof value !== 'object' || value === null) fail(name, 'must be an object');
  const out: BandwidthCap = {};
  const down = rate(`${name}.downloadBytesPerSec`, value.downloadBytesPerSec);
  const up = rate(`${name}.uploadBytesPerSec`, value.uploadBytesPerSec);
  if (down !== undefined) out.downloadBytesPerSec = down;
  if (up !== undefined) out.uploadBytesPerSec = up;
  return Object.freeze(out);
}

/** No caps, no login delay, no bans: what a bare FtpServer gets when given no access options. */
export const NO_LIMITS: Readonly<LimitsOptions> = Object.freeze({
  maxConnections: 0,
  maxConnectionsPerAddress: 0,
  maxConnectionsPerUser: 0,
  loginDelayBaseMs: 0,
  loginDelayMaxMs: 0,
  banAfterFailures: 0,
});

export function resolveLimits(options: LimitsOptions = {}): ResolvedLimits {
  const d = LIMITS_DEFAULTS;
  const bits = count('ipv6PrefixBits', options.ipv6PrefixBits, d.ipv6PrefixBits, 1);
  if (bits > 128) fail('ipv6PrefixBits', 'must be 1..128');
  const userBandwidth: Record<string, BandwidthCap> = {};
  for (const [user, value] of Object.entries(options.userBandwidth ?? {})) userBandwidth[user] = cap(`userBandwidth.${user}`, value);
  const resolved: ResolvedLimits = {
    maxConnections: count('maxConnections', options.maxConnections, d.maxConnections),
    maxConnectionsPerAddress: count('maxConnectionsPerAddress', options.maxConnectionsPerAddress, d.maxConnectionsPerAddress),
    maxConnectionsPerUser: count('maxConnectionsPerUser', options.maxConnectionsPerUser, d.maxConnectionsPerUser),
    ipv6PrefixBits: bits,
    loginDelayBaseMs: ms('loginDelayBaseMs', options.loginDelayBaseMs, d.loginDelayBaseMs),
    loginDelayMaxMs: ms('loginDelayMaxMs', options.loginDelayMaxMs, d.loginDelayMaxMs),
    banAfterFailures: count('banAfterFailures', options.banAfterFailures, d.banAfterFailures),
    failureWindowMs: ms('failureWindowMs', options.failureWindowMs, d.failureWindowMs, 1),
    banMs: ms('banMs', options.banMs, d.banMs, 1),
    maxTrackedAddresses: count('maxTrackedAddresses', options.maxTrackedAddresses, d.maxTrackedAddresses, 1),
    bandwidth: cap('bandwidth', options.bandwidth),
    userBandwidth: Object.freeze(userBandwidth),
  };
  if (resolved.maxTrackedAddresses === Infinity) fail('maxTrackedAddresses', 'must be finite (memory stays bounded)');
  if (resolved.loginDelayMaxMs < resolved.loginDelayBaseMs) fail('loginDelayMaxMs', 'must be ≥ loginDelayBaseMs');
  return Object.freeze(resolved);
}
