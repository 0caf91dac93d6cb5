// The one classifier of a Dropbox answer (status, headers, body) or of its absence (a network
// failure): ok, retry, throttled, write-lock, auth or fatal (with its DROPFTP_ERR_* code). Any thread;
// pure (no I/O, no clock but Date.now for an HTTP-date Retry-After). Invariants: decisions use the
// error union's .tag chain, never error_summary text (dropbox-api.md §2.1); every server-given delay
// is a finite number of ms in 0..maxRetryAfterMs, and a value that was capped or invalid says so in
// `notice` (the request layer logs it); a body that is not the JSON it must be is fatal, never a throw.

import type { ErrorCode } from '../errors.ts';

export type Classified =
  | { kind: 'ok'; status: number; json: unknown }
  /** 5xx, a network failure, a body damaged on the way: the same call may be sent again. */
  | { kind: 'retry'; status: number; reason: string; retryAfterMs: number; nothingDone: boolean; notice: string | null }
  /** 429 too_many_requests: the account's call rate is over Dropbox's limit. */
  | { kind: 'throttled'; status: number; reason: string; retryAfterMs: number; notice: string | null }
  /** too_many_write_operations (429 or inside a 409 / batch entry): namespace lock contention. */
  | { kind: 'write-lock'; status: number; reason: string; retryAfterMs: number; notice: string | null }
  /** 401: the access token is refused; `tag` is the AuthError tag (null when the body had none). */
  | { kind: 'auth'; status: number; reason: string; tag: string | null }
  | { kind: 'fatal'; status: number; code: ErrorCode; reason: string; tags: string[]; error: unknown; correctOffset: number | null };

export type Fatal = Extract<Classified, { kind: 'fatal' }>;
/** Every classification but ok. */
export type Failed = Exclude<Classified, { kind: 'ok' }>;

/** Default cap of a server-given delay (Retry-After, retry_after, longpoll backoff): 300 s. */
export const DEFAULT_MAX_RETRY_AFTER_MS = 300_000;
/** Dropbox's spec default when a 429 names no delay (auth.stone RateLimitError.retry_after = 1). */
const DEFAULT_RETRY_AFTER_MS = 1000;
/** Node fires a timer of more than 2^31-1 ms at once: no cap may exceed this. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface AnswerInput {
  status: number;
  /** A response header by lower-case name. */
  header(name: string): string | null | undefined;
  /** The whole body as text ('' when it could not be read). */
  text: string;
  /** A 2xx whose body must be JSON (RPC routes, oauth2/token); content routes stream theirs. */
  expectJson?: boolean;
  /** 'oauth2/token' answers OAuth errors ({error, error_description}), not Dropbox unions. */
  route?: string;
}

/** Every `.tag` in a Dropbox error union, outermost first (a bare string union member counts). */
export function errorTags(error: unknown, out: string[] = [], depth = 0): string[] {
  if (depth > 8) return out;
  if (typeof error === 'string') {
    out.push(error); // the compact form of a void member: "not_found" ≡ {".tag":"not_found"}
    return out;
  }
  if (error === null || typeof error !== 'object') return out;
  const tag = (error as Record<string, unknown>)['.tag'];
  if (typeof tag === 'string') out.push(tag);
  for (const [key, child] of Object.entries(error)) {
    // Strings are tags only as the value of the member a tag names ({".tag":"path","path":"not_found"}).
    if (key !== '.tag' && (typeof child === 'object' || (key === tag && typeof child === 'string'))) errorTags(child, out, depth + 1);
  }
  return out;
}

function findCorrectOffset(value: unknown, depth = 0): number | null {
  if (depth > 8 || value === null || typeof value !== 'object') return null;
  const own = (value as Record<string, unknown>).correct_offset;
  if (typeof own === 'number' && Number.isSafeInteger(own) && own >= 0) return own;
  for (const child of Object.values(value)) {
    const found = findCorrectOffset(child, depth + 1);
    if (found !== null) return found;
  }
  return null;
}

/**
 * A server-given delay in seconds (a number from JSON, or a header string: delta-seconds or an
 * HTTP-date, RFC 9110 §10.2.3) as ms. Absent → null; negative, non-numeric, non-finite → the cap
 * (a flood of refused calls counts against the account: never 0 for a bad value); above the cap →
 * the cap. `notice` says when either happened.
 */
export function serverDelay(seconds: unknown, maxMs: number, what: string): { ms: number; notice: string | null } | null {
  const cap = Math.min(Math.max(0, maxMs), MAX_TIMER_MS);
  if (seconds === undefined || seconds === null || seconds === '') return null;
  let value = NaN;
  if (typeof seconds === 'number') value = seconds;
  else if (typeof seconds === 'string') {
    const text = seconds.trim();
    if (/^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(text)) value = Number(text);
    else if (/[a-z]/i.test(text) && Number.isFinite(Date.parse(text))) value = Math.max(0, (Date.parse(text) - Date.now()) / 1000);
  }
  if (!Number.isFinite(value) || value < 0) return { ms: cap, notice: `${what} ${JSON.stringify(seconds)} is not a delay; waiting the cap of ${cap} ms` };
  const ms = value * 1000;
  if (ms > cap) return { ms: cap, notice: `${what} of ${value} s capped at ${cap} ms` };
  return { ms, notice: null };
}

/** The delay a 429 (or a write-lock entry) asks for: the larger valid one of the header and the JSON. */
function retryAfter(header: string | null | undefined, json: unknown, maxMs: number): { ms: number; notice: string | null } {
  const body = (json as { error?: { retry_after?: unknown } } | null)?.error?.retry_after;
  const fromHeader = serverDelay(header ?? undefined, maxMs, 'Retry-After');
  const fromBody = serverDelay(body, maxMs, 'retry_after');
  const valid = [fromHeader, fromBody].filter((d): d is { ms: number; notice: null } => d !== null && d.notice === null);
  if (valid.length > 0) return { ms: Math.max(...valid.map((d) => d.ms)), notice: null };
  const bad = fromHeader ?? fromBody;
  if (bad) return bad;
  return { ms: Math.min(DEFAULT_RETRY_AFTER_MS, Math.max(0, maxMs)), notice: null };
}

/** Route error tags in the order they decide (the first present wins), with their codes. */
const TAG_CODES: [string, ErrorCode][] = [
  ['not_found', 'DROPFTP_ERR_NOT_FOUND'],
  ['not_file', 'DROPFTP_ERR_NOT_A_FILE'],
  ['unsupported_file', 'DROPFTP_ERR_NOT_A_FILE'],
  ['not_folder', 'DROPFTP_ERR_NOT_A_FOLDER'],
  // A write under a file ("MKD /file.bin/sub", "STOR /file.bin/x"): path/conflict/file_ancestor is
  // a conflict, but what the client needs to hear is that a component is not a folder.
  ['file_ancestor', 'DROPFTP_ERR_NOT_A_FOLDER'],
  ['insufficient_space', 'DROPFTP_ERR_INSUFFICIENT_SPACE'],
  ['malformed_path', 'DROPFTP_ERR_BAD_PATH'],
  ['disallowed_name', 'DROPFTP_ERR_BAD_PATH'],
  ['cant_move_folder_into_itself', 'DROPFTP_ERR_BAD_PATH'],
  ['duplicated_or_nested_paths', 'DROPFTP_ERR_BAD_PATH'],
  ['no_write_permission', 'DROPFTP_ERR_PERMISSION'],
  ['restricted_content', 'DROPFTP_ERR_PERMISSION'],
  ['access_restricted', 'DROPFTP_ERR_PERMISSION'],
  ['team_folder', 'DROPFTP_ERR_PERMISSION'],
  ['too_many_files', 'DROPFTP_ERR_PERMISSION'],
  ['conflict', 'DROPFTP_ERR_EXISTS'],
];

/**
 * A route error union: a 409 body's `error`, or a finish_batch entry's `failure`. Lock contention
 * and a damaged body are retried; everything else is the route's answer (fatal for the layer), with
 * its tags and any correct_offset for callers that act on them (upload sessions, the feed's reset).
 */
export function classifyRouteError(error: unknown, summary = '', status = 409, maxRetryAfterMs = DEFAULT_MAX_RETRY_AFTER_MS): Failed {
  const tags = errorTags(error);
  const reason = summary || tags.join('/') || 'unrecognised Dropbox error';
  if (tags.includes('too_many_write_operations')) {
    const delay = retryAfter(undefined, { error }, maxRetryAfterMs);
    return { kind: 'write-lock', status, reason, retryAfterMs: delay.ms, notice: delay.notice };
  }
  // The content_hash given with the body does not match what arrived: it was damaged on the way.
  if (tags.includes('content_hash_mismatch')) return { kind: 'retry', status, reason, retryAfterMs: 0, nothingDone: true, notice: null };
  const correctOffset = findCorrectOffset(error);
  const found = TAG_CODES.find(([tag]) => tags.includes(tag));
  return { kind: 'fatal', status, code: found ? found[1] : 'DROPFTP_ERR_UPSTREAM', reason, tags, error, correctOffset };
}

function fatal(status: number, code: ErrorCode, reason: string, error: unknown = null): Fatal {
  return { kind: 'fatal', status, code, reason, tags: [], error, correctOffset: null };
}

/** Classifies one HTTP answer whose body has been read. */
export function classifyAnswer(answer: AnswerInput, maxRetryAfterMs = DEFAULT_MAX_RETRY_AFTER_MS): Classified {
  const { status, text } = answer;
  let json: unknown = undefined;
  let parsed = false;
  if (text !== '') {
    try {
      json = JSON.parse(text);
      parsed = true;
    } catch {
      json = undefined;
    }
  }
  const obj = parsed && json !== null && typeof json === 'object' ? (json as Record<string, unknown>) : null;
  const summary = typeof obj?.error_summary === 'string' ? obj.error_summary : text.slice(0, 200).replace(/\s+/g, ' ').trim();
  const route = answer.route ? `${answer.route}: ` : '';
  if (status >= 200 && status < 300) {
    if (answer.expectJson && !parsed) {
      return fatal(status, 'DROPFTP_ERR_UPSTREAM_MALFORMED', `${route}HTTP ${status} answer is not JSON: ${JSON.stringify(text.slice(0, 80))}`);
    }
    return { kind: 'ok', status, json: parsed ? json : null };
  }
  if (status === 429) {
    // A non-JSON 429 is too_many_requests (dropbox-api.md §2.1).
    const tag = errorTags((obj?.error as { reason?: unknown } | undefined)?.reason)[0] ?? (obj?.error as { reason?: unknown } | undefined)?.reason;
    const delay = retryAfter(answer.header('retry-after'), obj, maxRetryAfterMs);
    const kind = tag === 'too_many_write_operations' ? 'write-lock' : 'throttled';
    return { kind, status, reason: `${route}429 ${summary}`, retryAfterMs: delay.ms, notice: delay.notice };
  }
  if (status >= 500) {
    const delay = serverDelay(answer.header('retry-after') ?? undefined, maxRetryAfterMs, 'Retry-After');
    return { kind: 'retry', status, reason: `${route}${status} ${summary}`, retryAfterMs: delay?.ms ?? 0, nothingDone: false, notice: delay?.notice ?? null };
  }
  if (answer.route === 'oauth2/token') {
    // RFC 6749 §5.2: {error, error_description}; invalid_grant etc. are the credentials' fault.
    const what = typeof obj?.error === 'string' ? `${obj.error}${typeof obj.error_description === 'string' ? `: ${obj.error_description}` : ''}` : summary;
    return fatal(status, 'DROPFTP_ERR_UPSTREAM_AUTH', `${route}HTTP ${status} ${what}`, obj);
  }
  if (status === 401) {
    const tag = obj ? (errorTags(obj.error)[0] ?? null) : null;
    return { kind: 'auth', status, reason: `${route}401 ${summary}`, tag };
  }
  if (status === 409) {
    if (!obj || !('error' in obj)) return fatal(status, 'DROPFTP_ERR_UPSTREAM_MALFORMED', `${route}409 without an error union: ${JSON.stringify(text.slice(0, 80))}`);
    return classifyRouteError(obj.error, `${route}${summary}`, status, maxRetryAfterMs);
  }
  // 400: the request was refused as malformed; what varies in our requests is the client's path.
  if (status === 400) return fatal(status, 'DROPFTP_ERR_BAD_PATH', `${route}400 ${summary}`);
  if (status === 403) return fatal(status, 'DROPFTP_ERR_PERMISSION', `${route}403 ${summary}`, obj?.error ?? null);
  if (status === 416) return fatal(status, 'DROPFTP_ERR_BAD_OFFSET', `${route}416 ${summary}`);
  return fatal(status, 'DROPFTP_ERR_UPSTREAM', `${route}HTTP ${status} ${summary}`, obj?.error ?? null);
}

/** A request that got no answer: aborted by its caller (fatal) or a network failure (retry). */
export function classifyThrown(err: unknown, aborted = false, route = ''): Failed {
  const code = (err as { code?: unknown })?.code;
  const message = err instanceof Error ? err.message : String(err);
  const cause = (err as { cause?: { code?: unknown; message?: unknown } })?.cause;
  const detail = [typeof code === 'string' ? code : '', message, typeof cause?.code === 'string' ? `(${cause.code})` : ''].filter(Boolean).join(' ');
  const prefix = route ? `${route}: ` : '';
  if (aborted) return fatal(0, 'DROPFTP_ERR_ABORTED', `${prefix}aborted`);
  // Refused before anything was sent: safe to resend even a call that is not idempotent.
  const refused = code === 'ECONNREFUSED' || cause?.code === 'ECONNREFUSED';
  return { kind: 'retry', status: 0, reason: `${prefix}${detail}`, retryAfterMs: 0, nothingDone: refused, notice: null };
}
