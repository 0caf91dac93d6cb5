// Value kinds of configuration options: one parser per kind, shared by the YAML file, environment
// variables and flags. Main thread, at start-up. Invariant: a parser returns the typed value or
// throws ValueError whose text reads after "option: " ("expected …, got …"); text sources (env,
// flags) and YAML scalars go through the same parser, so "30" and 30 mean the same everywhere.

import { parseRateLimit } from '../localbox/limits.ts';

export class ValueError extends Error {}

export type Kind =
  | 'string'
  | 'int'
  | 'bool'
  | 'enum'
  | 'hostPort'
  | 'portRange'
  | 'durationMs'
  | 'bytes'
  | 'stringList'
  | 'rateLimit'
  | 'map';

export interface HostPort {
  host: string;
  port: number;
}

export interface PortRangeValue {
  min: number;
  max: number;
}

export interface KindSpec {
  kind: Kind;
  min?: number;
  max?: number;
  values?: readonly string[];
  /** null is a valid value ("off", "none"), written `null` or `off` in text sources. */
  nullable?: boolean;
}

export function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  return String(value);
}

const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000 };
const UNITS_BYTES: Record<string, number> = { b: 1, k: 1024, kb: 1000, kib: 1024, m: 1 << 20, mb: 1e6, mib: 1 << 20, g: 1 << 30, gb: 1e9, gib: 1 << 30, t: 2 ** 40, tb: 1e12, tib: 2 ** 40 };

function integer(value: unknown, spec: KindSpec, what: string): number {
  let n: number = NaN;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && /^\s*-?\d+\s*$/.test(value)) n = Number(value);
  const min = spec.min ?? 0;
  const max = spec.max ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(n)) throw new ValueError(`expected ${what}, got ${shown(value)}`);
  if (n < min || n > max) throw new ValueError(`expected ${what} in ${min}..${max}, got ${n}`);
  return n;
}

function withUnit(value: unknown, units: Record<string, number>, spec: KindSpec, what: string, example: string): number {
  if (typeof value === 'number') return integer(value, spec, what);
  const m = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(value) : null;
  const unit = m?.[2]?.toLowerCase() ?? '';
  const factor = unit === '' ? 1 : units[unit];
  if (!m || factor === undefined) throw new ValueError(`expected ${what} (a number or e.g. "${example}"), got ${shown(value)}`);
  return integer(Math.round(Number(m[1]) * factor), spec, what);
}

function port(text: string, original: unknown): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) throw new ValueError(`expected a port 0..65535, got ${shown(original)}`);
  return Number(text);
}

/** Parses one value of the given kind; `value` is a YAML scalar/collection or a text from env/flags. */
export function parseValue(spec: KindSpec, value: unknown): unknown {
  if (spec.nullable && (value === null || value === 'null' || value === 'off' || value === 'none' || value === '')) return null;
  switch (spec.kind) {
    case 'string':
      if (typeof value !== 'string' || value === '') throw new ValueError(`expected a non-empty string, got ${shown(value)}`);
      return value;
    case 'int':
      return integer(value, spec, (spec.min ?? 0) >= 1 ? 'a positive integer' : 'an integer');
    case 'bool':
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === '1' || value === 'yes' || value === 'on') return true;
      if (value === 'false' || value === '0' || value === 'no' || value === 'off') return false;
      throw new ValueError(`expected true or false, got ${shown(value)}`);
    case 'enum':
      if (typeof value !== 'string' || !spec.values!.includes(value)) throw new ValueError(`expected one of ${spec.values!.join(', ')}, got ${shown(value)}`);
      return value;
    case 'durationMs':
      return withUnit(value, UNITS_MS, spec, 'a duration in milliseconds', '30s');
    case 'bytes':
      return withUnit(value, UNITS_BYTES, spec, 'a size in bytes', '512MiB');
    case 'hostPort': {
      const text = typeof value === 'number' ? `:${value}` : value;
      const m = typeof text === 'string' ? /^(?:\[([^\]]+)\]|([^:[\]]*)):([^:]+)$/.exec(text) : null;
      if (!m) throw new ValueError(`expected HOST:PORT (e.g. 0.0.0.0:2121 or [::]:2121), got ${shown(value)}`);
      return { host: m[1] ?? (m[2] || '0.0.0.0'), port: port(m[3]!, value) } satisfies HostPort;
    }
    case 'portRange': {
      const m = typeof value === 'string' ? /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(value) : null;
      const min = Number(m?.[1]);
      const max = Number(m?.[2]);
      if (!m || min < 1 || max > 65535 || min > max) throw new ValueError(`expected a port range A-B with 1 <= A <= B <= 65535, got ${shown(value)}`);
      return { min, max } satisfies PortRangeValue;
    }
    case 'stringList': {
      const items = typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter(Boolean) : value;
      if (!Array.isArray(items) || items.some((item) => typeof item !== 'string' || item === '')) throw new ValueError(`expected a list of strings, got ${shown(value)}`);
      return items as string[];
    }
    case 'rateLimit':
      try {
        return parseRateLimit(typeof value === 'number' ? String(value) : typeof value === 'string' ? value : '');
      } catch (err) {
        throw new ValueError(typeof value === 'string' || typeof value === 'number' ? (err as Error).message : `expected RATE[:BURST] (e.g. "12:12"), got ${shown(value)}`);
      }
    case 'map':
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ValueError(`expected a map, got ${shown(value)}`);
      return value;
  }
}
