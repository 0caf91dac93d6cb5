// Resolves LocalBoxOptions into a complete, frozen ServerConfig; validation messages name the
// option. Any thread. Invariant: a config that passes here starts a server or fails only on I/O.

import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { resolveLimits, type LimitsSpec } from './limits.ts';
import type { LocalBoxOptions, ServerConfig } from './types.ts';

const DEFAULTS = { host: '127.0.0.1', port: 0, gcIntervalMs: 10 * 60 * 1000, bodyIdleTimeoutMs: 10 * 60 * 1000 } as const;

export function resolveConfig(options: LocalBoxOptions, extra: { gcIntervalMs?: number; bodyIdleTimeoutMs?: number } = {}): Readonly<ServerConfig> {
  if (!options || typeof options.dataDir !== 'string' || options.dataDir === '') {
    throw new TypeError('localbox: option "dataDir" must be a non-empty path');
  }
  const port = options.port ?? DEFAULTS.port;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError('localbox: option "port" must be an integer 0..65535');
  if (options.tls && (typeof options.tls.cert !== 'string' || typeof options.tls.key !== 'string')) {
    throw new TypeError('localbox: option "tls" must be { cert, key } PEM file paths');
  }
  if (options.adminToken !== undefined && (typeof options.adminToken !== 'string' || options.adminToken.length < 8)) {
    throw new TypeError('localbox: option "adminToken" must be a string of at least 8 characters');
  }
  const bodyIdleTimeoutMs = extra.bodyIdleTimeoutMs ?? DEFAULTS.bodyIdleTimeoutMs;
  if (!Number.isSafeInteger(bodyIdleTimeoutMs) || bodyIdleTimeoutMs < 1) throw new TypeError('localbox: "bodyIdleTimeoutMs" must be a whole number of ms >= 1');
  let limits: LimitsSpec;
  try {
    limits = resolveLimits(options.limits ?? {});
  } catch (err) {
    throw new TypeError(`localbox: option "limits": ${(err as Error).message}`);
  }
  return Object.freeze({
    dataDir: resolve(options.dataDir),
    host: options.host ?? DEFAULTS.host,
    port,
    tls: options.tls ? { cert: resolve(options.tls.cert), key: resolve(options.tls.key) } : null,
    faults: options.faults ?? { rules: [] },
    adminToken: options.adminToken ?? randomBytes(24).toString('base64url'),
    gcIntervalMs: extra.gcIntervalMs ?? DEFAULTS.gcIntervalMs,
    bodyIdleTimeoutMs,
    limits,
  });
}
