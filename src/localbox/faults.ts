// Fault injection: decides, per request, which configured faults fire (429s, 5xx, latency, resets,
// corrupted bytes on the way out or in, bad answers: malformed, shifted range, body shorter/longer
// than promised) and caps concurrent requests per account. Runs in the local box child.
// Invariants: off unless a spec has rules or a cap; every fault that fires is counted once under its
// kind (the concurrency cap counts as both "too_many_requests" and "concurrency_limit"); a seeded
// PRNG makes probabilistic runs repeatable.

import { mulberry32 } from '../util/prng.ts';
import { badRequestRaw } from './api-errors.ts';
import type { BadAnswerKind, FaultRule, FaultSpec } from './types.ts';

const KINDS = ['too_many_requests', 'too_many_write_operations', 'server_error', 'latency', 'reset', 'corrupt', 'corrupt_upload', 'malformed', 'range_shift', 'short_body', 'long_body'] as const;
const DOWNLOAD_ONLY = new Set(['corrupt', 'range_shift', 'short_body', 'long_body']);
const UPLOAD_ONLY = new Set(['corrupt_upload']);

/** What the request pipeline must do for one request. */
export interface FaultDecision {
  latencyMs: number;
  reply: { kind: 'too_many_requests' | 'too_many_write_operations'; retryAfterSec: number } | { kind: 'server_error'; status: number } | null;
  resetAfterBytes: number | null; // destroy the socket after this many body bytes (0: at once)
  corruptAt: number | 'random' | null; // flip one byte of the download body at this offset
  /** Flip one byte of the upload body at this offset as it arrives ('random': within its Content-Length, or its first chunk). */
  corruptUploadAt: number | 'random' | null;
  badAnswer: { kind: BadAnswerKind; bytes: number } | null;
}

export class Faults {
  private spec: FaultSpec = { rules: [] };
  private fired: number[] = [];
  /** Per rule: matching requests let pass so far (its `skip`). */
  private skipped: number[] = [];
  private rng: () => number = Math.random;
  private readonly inFlight = new Map<string, number>();
  readonly counts: Record<string, number> = {};

  constructor(spec?: FaultSpec) {
    this.set(spec ?? { rules: [] });
  }

  /** Replaces the spec (and resets per-rule `count` budgets). Throws a 400 on a malformed spec. */
  set(spec: FaultSpec): void {
    validate(spec);
    this.spec = spec;
    this.fired = spec.rules.map(() => 0);
    this.skipped = spec.rules.map(() => 0);
    this.rng = spec.seed === undefined ? Math.random : mulberry32(spec.seed);
  }

  get current(): FaultSpec {
    return this.spec;
  }

  private count(kind: string): void {
    this.counts[kind] = (this.counts[kind] ?? 0) + 1;
  }

  /** `ranged`: the request asks for a Range (range_shift fires on those only). */
  decide(route: string, account: string | null, hasBody: 'download' | 'upload' | 'none', ranged = false): FaultDecision {
    const d: FaultDecision = { latencyMs: 0, reply: null, resetAfterBytes: null, corruptAt: null, corruptUploadAt: null, badAnswer: null };
    this.spec.rules.forEach((rule, i) => {
      if (rule.routes && !rule.routes.includes(route)) return;
      if (rule.accounts && (account === null || !rule.accounts.includes(account))) return;
      if (rule.count !== undefined && this.fired[i]! >= rule.count) return;
      if (DOWNLOAD_ONLY.has(rule.kind) && hasBody !== 'download') return;
      if (UPLOAD_ONLY.has(rule.kind) && (hasBody !== 'upload' || d.corruptUploadAt !== null)) return;
      if (rule.kind === 'range_shift' && !ranged) return;
      if ((rule.kind === 'malformed' || DOWNLOAD_ONLY.has(rule.kind)) && rule.kind !== 'corrupt' && d.badAnswer) return;
      if ((rule.kind === 'too_many_requests' || rule.kind === 'too_many_write_operations' || rule.kind === 'server_error') && d.reply) return;
      if (rule.kind === 'reset' && d.resetAfterBytes !== null) return;
      if (rule.skip !== undefined && this.skipped[i]! < rule.skip) {
        this.skipped[i]!++;
        return;
      }
      if (this.rng() >= (rule.probability ?? 1)) return;
      this.fired[i]!++;
      this.count(rule.kind);
      switch (rule.kind) {
        case 'latency':
          d.latencyMs += rule.latencyMs ?? 0;
          break;
        case 'too_many_requests':
        case 'too_many_write_operations':
          d.reply = { kind: rule.kind, retryAfterSec: rule.retryAfterSec ?? 1 };
          break;
        case 'server_error':
          d.reply = { kind: 'server_error', status: rule.status ?? 503 };
          break;
        case 'reset':
          d.resetAfterBytes = hasBody === 'none' ? 0 : (rule.afterBytes ?? 0);
          break;
        case 'corrupt':
          d.corruptAt = rule.afterBytes ?? 'random';
          break;
        case 'corrupt_upload':
          d.corruptUploadAt = rule.afterBytes ?? 'random';
          break;
        default:
          d.badAnswer = { kind: rule.kind, bytes: rule.bytes ?? 1 };
          break;
      }
    });
    return d;
  }

  /** Takes a concurrency slot for the account; false (and a counted 429) when the cap is reached. */
  acquire(account: string): boolean {
    const cap = this.spec.concurrencyPerAccount;
    const n = this.inFlight.get(account) ?? 0;
    if (cap !== undefined && n >= cap) {
      this.count('too_many_requests');
      this.count('concurrency_limit');
      return false;
    }
    this.inFlight.set(account, n + 1);
    return true;
  }

  release(account: string): void {
    const n = (this.inFlight.get(account) ?? 1) - 1;
    if (n <= 0) this.inFlight.delete(account);
    else this.inFlight.set(account, n);
  }

  /** A pseudo-random integer in [0, n) from the spec's PRNG. */
  randomInt(n: number): number {
    return Math.floor(this.rng() * n);
  }
}

function validate(spec: FaultSpec): void {
  const fail = (msg: string): never => {
    throw badRequestRaw(`invalid fault spec: ${msg}`);
  };
  if (!spec || typeof spec !== 'object' || !Array.isArray(spec.rules)) fail('"rules" must be a list');
  if (spec.concurrencyPerAccount !== undefined && !(Number.isInteger(spec.concurrencyPerAccount) && spec.concurrencyPerAccount >= 1)) {
    fail('"concurrencyPerAccount" must be an integer ≥ 1');
  }
  if (spec.seed !== undefined && !Number.isFinite(spec.seed)) fail('"seed" must be a number');
  spec.rules.forEach((r: FaultRule, i) => {
    if (!r || !(KINDS as readonly string[]).includes(r.kind)) fail(`rules[${i}].kind must be one of ${KINDS.join(', ')}`);
    if (r.probability !== undefined && !(r.probability >= 0 && r.probability <= 1)) fail(`rules[${i}].probability must be in 0..1`);
    if (r.status !== undefined && !(Number.isInteger(r.status) && r.status >= 500 && r.status <= 599)) fail(`rules[${i}].status must be 500..599`);
    for (const k of ['latencyMs', 'afterBytes', 'count', 'skip', 'retryAfterSec', 'bytes'] as const) {
      const v = r[k];
      if (v !== undefined && !(Number.isInteger(v) && v >= 0)) fail(`rules[${i}].${k} must be a non-negative integer`);
    }
    for (const k of ['routes', 'accounts'] as const) {
      const v = r[k];
      if (v !== undefined && !(Array.isArray(v) && v.every((s) => typeof s === 'string'))) fail(`rules[${i}].${k} must be a list of strings`);
    }
  });
}
