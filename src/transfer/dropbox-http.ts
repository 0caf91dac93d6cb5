// The few Dropbox HTTP calls the engine makes (content download/upload-session routes, and the
// finish_batch_v2 RPC), over undici with keep-alive, and the classification of every failure.
// Any thread (each thread owns its own Agent). Invariants: every response body is consumed or
// destroyed; failures are classified as retry (with a delay hint), offset (correct_offset), auth (401:
// get a fresh token and retry) or fatal (a DROPFTP_ERR_* code) — never thrown past the caller as a raw
// network error. Every answer (or its absence) of a request sent through an agent made with counters
// is counted there by route and status (request-counts.ts), here and nowhere else.

import { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import type { Dispatcher } from 'undici';
import type { CallOutcome } from '../dropbox/pacer.ts';
import type { ErrorCode } from '../errors.ts';
import type { AccountWire } from './task-wire.ts';
import { countRequest } from './request-counts.ts';
import { readToken } from './token-cell.ts';

export type Failure =
  // retryAfterMs of a 429 is the server's value as sent (NaN when unusable): the pacer caps it.
  | { kind: 'retry'; reason: string; retryAfterMs: number; throttle: 'requests' | 'lock' | null }
  | { kind: 'offset'; correctOffset: number; reason: string }
  | { kind: 'closed'; reason: string }
  | { kind: 'auth'; reason: string } // 401: the access token is refused (expired or revoked)
  | { kind: 'fatal'; code: ErrorCode; reason: string };

/** The control-block words each counting agent adds its requests' answers to. */
const counted = new WeakMap<Dispatcher, Int32Array>();

/** A keep-alive agent; with `counters` (the engine's control words) every answer it gets is counted. */
export function createAgent(counters?: Int32Array): Agent {
  const agent = new Agent({
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
    connect: { timeout: 10_000 },
  });
  if (counters) counted.set(agent, counters);
  return agent;
}

/** Counts the answer of `route` (its status; 0 when the request failed without one). */
function counting(dispatcher: Dispatcher, route: string, pending: Promise<Dispatcher.ResponseData>): Promise<Dispatcher.ResponseData> {
  const words = counted.get(dispatcher);
  if (!words) return pending;
  return pending.then(
    (res) => {
      countRequest(words, route, res.statusCode);
      return res;
    },
    (err: unknown) => {
      countRequest(words, route, 0);
      throw err;
    },
  );
}

/** JSON for the Dropbox-API-Arg header: every code unit ≥ 0x7F escaped (§1.3). */
export function headerSafeJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

export function bearer(account: AccountWire): string {
  return `Bearer ${readToken(account.tokenCell).token}`;
}

export interface ContentCall {
  dispatcher: Dispatcher;
  account: AccountWire;
  route: string; // e.g. 'files/download'
  arg: unknown;
  /** Bytes, or a stream of them whose total is bodyBytes (sent with that Content-Length). */
  body?: Uint8Array | AsyncIterable<Uint8Array>;
  bodyBytes?: number;
  headers?: Record<string, string>;
}

export function contentRequest(call: ContentCall): Promise<Dispatcher.ResponseData> {
  const headers: Record<string, string> = {
    authorization: bearer(call.account),
    'dropbox-api-arg': headerSafeJson(call.arg),
    ...call.headers,
  };
  let body: Buffer | Readable | undefined;
  if (call.body instanceof Uint8Array) body = Buffer.from(call.body.buffer, call.body.byteOffset, call.body.byteLength);
  else if (call.body) {
    body = Readable.from(call.body, { objectMode: false });
    if (call.bodyBytes !== undefined) headers['content-length'] = String(call.bodyBytes);
  }
  if (call.body) headers['content-type'] = 'application/octet-stream';
  const pending = request(`${call.account.contentUrl}/2/${call.route}`, {
    method: 'POST',
    headers,
    body,
    dispatcher: call.dispatcher,
  });
  return counting(call.dispatcher, call.route, pending);
}

export function rpcRequest(dispatcher: Dispatcher, account: AccountWire, route: string, arg: unknown): Promise<Dispatcher.ResponseData> {
  const pending = request(`${account.apiUrl}/2/${route}`, {
    method: 'POST',
    headers: { authorization: bearer(account), 'content-type': 'application/json' },
    body: JSON.stringify(arg),
    dispatcher,
  });
  return counting(dispatcher, route, pending);
}

/** Reads a non-2xx response (its body is consumed) and classifies it. */
export async function classifyResponse(res: Dispatcher.ResponseData): Promise<Failure> {
  const text = await res.body.text().catch(() => '');
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return classifyStatus(res.statusCode, json, text, headerValue(res.headers['retry-after']));
}

export function classifyStatus(status: number, json: any, text: string, retryAfterHeader: string | undefined): Failure {
  const summary = typeof json?.error_summary === 'string' ? json.error_summary : text.slice(0, 200);
  if (status === 429) {
    // JSON retry_after first (what rclone reads), then the header; absent: Dropbox's default of 1 s.
    const given = json?.error?.retry_after ?? retryAfterHeader ?? 1;
    const seconds = typeof given === 'number' || (typeof given === 'string' && given.trim() !== '') ? Number(given) : NaN;
    const tag = json?.error?.reason?.['.tag'] ?? json?.error?.reason;
    return {
      kind: 'retry',
      reason: `429 ${summary}`,
      retryAfterMs: seconds * 1000,
      throttle: tag === 'too_many_write_operations' ? 'lock' : 'requests',
    };
  }
  if (status >= 500) return { kind: 'retry', reason: `${status} ${summary}`, retryAfterMs: 0, throttle: null };
  if (status === 401) return { kind: 'auth', reason: `401 ${summary}` };
  if (status === 403) return { kind: 'fatal', code: 'DROPFTP_ERR_PERMISSION', reason: `403 ${summary}` };
  if (status === 409) return classifyRouteError(json?.error, summary);
  if (status === 416) return { kind: 'fatal', code: 'DROPFTP_ERR_BAD_OFFSET', reason: `416 ${summary}` };
  return { kind: 'fatal', code: 'DROPFTP_ERR_UPSTREAM', reason: `${status} ${summary}` };
}

/** Classifies a route error union (409 body `error`, or a finish_batch entry `failure`). */
export function classifyRouteError(error: any, summary = ''): Failure {
  const tags = collectTags(error);
  const reason = summary || tags.join('/');
  const offset = findCorrectOffset(error);
  if (offset !== null) return { kind: 'offset', correctOffset: offset, reason };
  if (tags.includes('too_many_write_operations')) return { kind: 'retry', reason, retryAfterMs: 1000, throttle: 'lock' };
  if (tags.includes('content_hash_mismatch')) return { kind: 'retry', reason, retryAfterMs: 0, throttle: null };
  if (tags.includes('closed')) return { kind: 'closed', reason };
  if (tags.includes('not_found')) return { kind: 'fatal', code: 'DROPFTP_ERR_NOT_FOUND', reason };
  if (tags.includes('not_file') || tags.includes('unsupported_file')) return { kind: 'fatal', code: 'DROPFTP_ERR_NOT_A_FILE', reason };
  if (tags.includes('not_folder')) return { kind: 'fatal', code: 'DROPFTP_ERR_NOT_A_FOLDER', reason };
  if (tags.includes('insufficient_space')) return { kind: 'fatal', code: 'DROPFTP_ERR_INSUFFICIENT_SPACE', reason };
  if (tags.includes('malformed_path') || tags.includes('disallowed_name')) return { kind: 'fatal', code: 'DROPFTP_ERR_BAD_PATH', reason };
  if (tags.includes('no_write_permission') || tags.includes('restricted_content') || tags.includes('access_restricted')) {
    return { kind: 'fatal', code: 'DROPFTP_ERR_PERMISSION', reason };
  }
  if (tags.includes('conflict')) return { kind: 'fatal', code: 'DROPFTP_ERR_EXISTS', reason };
  return { kind: 'fatal', code: 'DROPFTP_ERR_UPSTREAM', reason: reason || 'unrecognised Dropbox error' };
}

/**
 * What the pacer learns from an answer: 429s by kind, 5xx as failed, anything else (2xx, 4xx: the
 * call was served) as ok.
 */
export function callOutcome(status: number, failure: Failure | null): CallOutcome {
  if (failure?.kind === 'retry' && failure.throttle === 'requests') return { kind: 'throttled', retryAfterMs: failure.retryAfterMs };
  if (failure?.kind === 'retry' && failure.throttle === 'lock') return { kind: 'write-lock', retryAfterMs: failure.retryAfterMs };
  return status >= 500 || status === 0 ? { kind: 'failed' } : { kind: 'ok' };
}

/** Network-level failures (reset, timeout, refused) are retried. */
export function classifyThrown(err: unknown): Failure {
  const code = (err as { code?: string })?.code ?? '';
  const message = err instanceof Error ? err.message : String(err);
  return { kind: 'retry', reason: `${code} ${message}`.trim(), retryAfterMs: 0, throttle: null };
}

function collectTags(value: any, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (value && typeof value === 'object') {
    if (typeof value['.tag'] === 'string') out.push(value['.tag']);
    for (const [k, v] of Object.entries(value)) if (k !== '.tag' && typeof v === 'object') collectTags(v, out);
  }
  return out;
}

function findCorrectOffset(value: any): number | null {
  if (!value || typeof value !== 'object') return null;
  if (typeof value.correct_offset === 'number') return value.correct_offset;
  for (const v of Object.values(value)) {
    const found = findCorrectOffset(v);
    if (found !== null) return found;
  }
  return null;
}

export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Backoff before retry `attempt` (1-based) of a non-throttled failure: 50 ms doubling to 2 s, jittered. */
export function backoffMs(attempt: number): number {
  const base = Math.min(2000, 50 * 2 ** Math.min(attempt - 1, 6));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
