// The error replies of the Dropbox API (reference §2): 400 text/plain, 401 AuthError, 409 route
// errors with error_summary, 429 RateLimitError with Retry-After, 5xx. Runs in the local box child.
// Invariant: every handler failure becomes exactly one of these shapes; nothing else reaches a client.

export type Union = { '.tag': string; [key: string]: unknown };

export class ApiError extends Error {
  /** Set on 429 replies: which limit refused the call (counted by CallStats). */
  limit: 'too_many_requests' | 'too_many_write_operations' | null = null;

  constructor(
    readonly status: number,
    readonly contentType: string,
    readonly body: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(body);
  }
}

/** 400: bad input. `route` is e.g. "files/list_folder". */
export function badRequest(route: string, detail: string): ApiError {
  return new ApiError(400, 'text/plain; charset=utf-8', `Error in call to API function "${route}": ${detail}`);
}

/** 400 with a bare message (no route prefix), e.g. for unknown routes or bad headers. */
export function badRequestRaw(message: string): ApiError {
  return new ApiError(400, 'text/plain; charset=utf-8', message);
}

export function authError(tag: string, extra: Record<string, unknown> = {}): ApiError {
  return jsonError(401, { '.tag': tag, ...extra });
}

/** error_summary: the chain of tags joined by '/', then '/..' (for logs only; clients must not parse it). */
export function errorSummary(error: Union): string {
  const tags: string[] = [];
  let cur: unknown = error;
  while (cur && typeof cur === 'object' && '.tag' in cur) {
    const u = cur as Union;
    tags.push(u['.tag']);
    const nested = u[u['.tag']];
    if (nested && typeof nested === 'object' && '.tag' in (nested as object)) {
      cur = nested;
      continue;
    }
    // a flattened struct member (e.g. UploadWriteFailed): follow its first union-valued field
    cur = Object.entries(u).find(([k, v]) => k !== '.tag' && v && typeof v === 'object' && '.tag' in v)?.[1];
  }
  return `${tags.join('/')}/..`;
}

function jsonError(status: number, error: Union, headers: Record<string, string> = {}): ApiError {
  const body = JSON.stringify({ error_summary: errorSummary(error), error });
  return new ApiError(status, 'application/json', body, headers);
}

/** 409: an endpoint-specific error union. */
export function routeError(error: Union): ApiError {
  return jsonError(409, error);
}

export function rateLimited(reason: 'too_many_requests' | 'too_many_write_operations', retryAfterSec: number): ApiError {
  const error = { reason: { '.tag': reason }, retry_after: retryAfterSec };
  const body = JSON.stringify({ error_summary: `${reason}/..`, error });
  const e = new ApiError(429, 'application/json', body, { 'Retry-After': String(retryAfterSec) });
  e.limit = reason;
  return e;
}

export function serverError(status: number): ApiError {
  return new ApiError(status, 'text/plain; charset=utf-8', `Internal server error (status ${status}, injected)`);
}

export function notFoundRoute(pathname: string): ApiError {
  return new ApiError(404, 'text/plain; charset=utf-8', `Unknown API function: "${pathname}"`);
}

// Helpers that build the common 409 unions (reference §2.2).
export const lookup = (tag: string): Union => ({ '.tag': tag });
export const pathError = (member: string, inner: Union): Union => ({ '.tag': member, [member]: inner });
export const conflict = (kind: 'file' | 'folder' | 'file_ancestor'): Union => ({
  '.tag': 'conflict',
  conflict: { '.tag': kind },
});
