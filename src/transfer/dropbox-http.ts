// The few Dropbox HTTP calls the engine makes over undici with keep-alive (upload-session routes
// and the finish_batch_v2 RPC; downloads go through direct-call.ts, which builds its headers and
// classifies its answers here too), and the classification of every failure.
// Any thread (each thread owns its own Agent). Invariants: every response body is consumed or
// destroyed; failures are classified by src/dropbox/classify.ts (the one classifier) and shaped here
// as retry (with a delay hint), offset (correct_offset), closed, auth (401: get a fresh token and
// retry) or fatal (a DROPFTP_ERR_* code) — never thrown past the caller as a raw network error.
// Every answer (or its absence) of a request sent through an agent made with counters is counted
// there by route and status (request-counts.ts), here — and a download's by its DirectPool.

import { Agent, request } from 'undici';
import type { Dispatcher } from 'undici';
import type { CallOutcome } from '../dropbox/pacer.ts';
import type { ErrorCode } from '../errors.ts';
import { CALL_START_HEADER, callStartStamp } from '../dropbox/call-stamp.ts';
import * as central from '../dropbox/classify.ts';
import type { AccountWire } from './task-wire.ts';
import { countRequest } from './request-counts.ts';
import { readToken } from './token-cell.ts';

export type Failure =
  // retryAfterMs of a 429 is the server's value as sent (over 24 days when unusable): the pacer caps,
  // counts and logs it against engine.maxRetryAfterSec (SharedPacer.retryAfterMs), here nothing does.
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

/** The control words an agent made with counters counts its answers in (null: not counted). */
export function countingWords(dispatcher: Dispatcher): Int32Array | null {
  return counted.get(dispatcher) ?? null;
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

/** The headers of a content call (its body's type and length included). */
export function contentHeaders(call: ContentCall): Record<string, string> {
  const headers: Record<string, string> = {
    authorization: bearer(call.account),
    'dropbox-api-arg': headerSafeJson(call.arg),
    [CALL_START_HEADER]: callStartStamp(),
    ...call.headers,
  };
  if (call.body) headers['content-type'] = 'application/octet-stream';
  if (call.body && !(call.body instanceof Uint8Array) && call.bodyBytes !== undefined) headers['content-length'] = String(call.bodyBytes);
  return headers;
}

export function contentRequest(call: ContentCall): Promise<Dispatcher.ResponseData> {
  // A stream of pieces goes to undici as the async iterable it is (undici writes each piece to the
  // socket and awaits 'drain'): a Readable around it would add a buffer and a tick per piece.
  let body: Buffer | AsyncIterable<Uint8Array> | undefined;
  if (call.body instanceof Uint8Array) body = Buffer.from(call.body.buffer, call.body.byteOffset, call.body.byteLength);
  else body = call.body;
  const pending = request(`${call.account.contentUrl}/2/${call.route}`, {
    method: 'POST',
    headers: contentHeaders(call),
    // undici takes async iterables (lib/core/request.js); its request() types list only Readable.
    body: body as Dispatcher.RequestOptions['body'],
    dispatcher: call.dispatcher,
  });
  return counting(call.dispatcher, call.route, pending);
}

export function rpcRequest(dispatcher: Dispatcher, account: AccountWire, route: string, arg: unknown): Promise<Dispatcher.ResponseData> {
  const pending = request(`${account.apiUrl}/2/${route}`, {
    method: 'POST',
    headers: { authorization: bearer(account), 'content-type': 'application/json', [CALL_START_HEADER]: callStartStamp() },
    body: JSON.stringify(arg),
    dispatcher,
  });
  return counting(dispatcher, route, pending);
}

/** Reads a non-2xx response (its body is consumed) and classifies it. */
export async function classifyResponse(res: Dispatcher.ResponseData): Promise<Failure> {
  const text = await res.body.text().catch(() => '');
  return classifyErrorText(res.statusCode, text, headerValue(res.headers['retry-after']));
}

/** Classifies a non-2xx answer from its status, body text (JSON or not) and Retry-After header. */
export function classifyErrorText(status: number, text: string, retryAfterHeader: string | undefined): Failure {
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return classifyStatus(status, json, text, retryAfterHeader);
}

/**
 * The engine's calls leave the Retry-After cap to the pacer: the classifier's own default cap (300 s)
 * would clamp first, so a capped value was neither counted nor logged and an engine.maxRetryAfterSec
 * above 300 s could not take effect.
 */
const PACER_CAPS = Infinity;

export function classifyStatus(status: number, json: any, text: string, retryAfterHeader: string | undefined): Failure {
  const body = text !== '' || json === null ? text : JSON.stringify(json);
  const c = central.classifyAnswer({ status, header: (name) => (name === 'retry-after' ? retryAfterHeader : undefined), text: body }, PACER_CAPS);
  // A 2xx is not a failure to classify here: whoever passed one gets the old fatal answer.
  if (c.kind === 'ok') return { kind: 'fatal', code: 'DROPFTP_ERR_UPSTREAM', reason: `${status} ${body.slice(0, 200)}` };
  return toFailure(c);
}

/** Classifies a route error union (409 body `error`, or a finish_batch entry `failure`). */
export function classifyRouteError(error: any, summary = ''): Failure {
  return toFailure(central.classifyRouteError(error, summary, 409, PACER_CAPS));
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
  return toFailure(central.classifyThrown(err));
}

/** The central classification in the shape the engine's tasks act on. */
function toFailure(c: central.Failed): Failure {
  switch (c.kind) {
    case 'retry':
      return { kind: 'retry', reason: c.reason, retryAfterMs: c.retryAfterMs, throttle: null };
    case 'throttled':
      return { kind: 'retry', reason: c.reason, retryAfterMs: c.retryAfterMs, throttle: 'requests' };
    case 'write-lock':
      return { kind: 'retry', reason: c.reason, retryAfterMs: c.retryAfterMs, throttle: 'lock' };
    case 'auth':
      return { kind: 'auth', reason: c.reason };
    case 'fatal':
      if (c.correctOffset !== null) return { kind: 'offset', correctOffset: c.correctOffset, reason: c.reason };
      if (c.tags.includes('closed')) return { kind: 'closed', reason: c.reason };
      return { kind: 'fatal', code: c.code, reason: c.reason };
  }
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
