// Maps Dropbox API failures (the SDK's DropboxResponseError, network errors) to DROPFTP_ERR_*
// codes. Any thread. Invariants: decisions use the error union's .tag chain, never error_summary
// text (dropbox-api.md 2.1); the resulting error's client text is the registry's, so no Dropbox
// path or tag reaches an FTP client; the Dropbox detail stays in `message` for logs.

import { DropftpError, type ErrorCode } from '../errors.ts';

/** Every `.tag` in a Dropbox error union, outermost first. */
export function errorTags(error: unknown): string[] {
  const tags: string[] = [];
  const walk = (value: unknown, depth: number): void => {
    if (depth > 6 || value === null || typeof value !== 'object') return;
    const tag = (value as Record<string, unknown>)['.tag'];
    if (typeof tag === 'string') tags.push(tag);
    for (const [key, child] of Object.entries(value)) if (key !== '.tag') walk(child, depth + 1);
  };
  walk(error, 0);
  return tags;
}

const TAG_CODES: [string, ErrorCode][] = [
  ['not_found', 'DROPFTP_ERR_NOT_FOUND'],
  ['not_file', 'DROPFTP_ERR_NOT_A_FILE'],
  ['not_folder', 'DROPFTP_ERR_NOT_A_FOLDER'],
  ['conflict', 'DROPFTP_ERR_EXISTS'],
  ['malformed_path', 'DROPFTP_ERR_BAD_PATH'],
  ['disallowed_name', 'DROPFTP_ERR_BAD_PATH'],
  ['cant_move_folder_into_itself', 'DROPFTP_ERR_BAD_PATH'],
  ['duplicated_or_nested_paths', 'DROPFTP_ERR_BAD_PATH'],
  ['no_write_permission', 'DROPFTP_ERR_PERMISSION'],
  ['restricted_content', 'DROPFTP_ERR_PERMISSION'],
  ['access_restricted', 'DROPFTP_ERR_PERMISSION'],
  ['team_folder', 'DROPFTP_ERR_PERMISSION'],
  ['insufficient_space', 'DROPFTP_ERR_INSUFFICIENT_SPACE'],
  ['too_many_write_operations', 'DROPFTP_ERR_RATE_LIMITED'],
  ['too_many_files', 'DROPFTP_ERR_PERMISSION'],
];

interface ResponseErrorLike {
  status: number;
  error: unknown;
}

function isResponseError(err: unknown): err is ResponseErrorLike {
  return typeof err === 'object' && err !== null && typeof (err as { status?: unknown }).status === 'number' && 'error' in err;
}

export function mapDropboxError(err: unknown, what: string): DropftpError {
  if (err instanceof DropftpError) return err;
  if (!isResponseError(err)) {
    const message = err instanceof Error ? err.message : String(err);
    return new DropftpError('DROPFTP_ERR_UPSTREAM', `${what}: ${message}`, { cause: err });
  }
  const summary = typeof (err.error as { error_summary?: unknown })?.error_summary === 'string' ? (err.error as { error_summary: string }).error_summary : '';
  const detail = `${what}: HTTP ${err.status} ${summary || (typeof err.error === 'string' ? err.error.slice(0, 200) : '')}`;
  if (err.status === 409) {
    const tags = errorTags((err.error as { error?: unknown })?.error);
    for (const [tag, code] of TAG_CODES) if (tags.includes(tag)) return new DropftpError(code, detail, { cause: err });
    return new DropftpError('DROPFTP_ERR_UPSTREAM', detail, { cause: err });
  }
  if (err.status === 429) return new DropftpError('DROPFTP_ERR_RATE_LIMITED', detail, { cause: err });
  if (err.status === 401 || err.status === 403) return new DropftpError('DROPFTP_ERR_UPSTREAM_AUTH', detail, { cause: err });
  if (err.status === 400) return new DropftpError('DROPFTP_ERR_BAD_PATH', detail, { cause: err });
  return new DropftpError('DROPFTP_ERR_UPSTREAM', detail, { cause: err });
}

/** Seconds to wait before retrying, from a 429 body or Retry-After header; null when not retryable. */
export function retryAfterMs(err: unknown): number | null {
  if (!isResponseError(err)) return err instanceof TypeError ? 200 : null; // fetch network failure
  if (err.status === 429) {
    const body = (err.error as { error?: { retry_after?: unknown } })?.error;
    const seconds = typeof body?.retry_after === 'number' ? body.retry_after : 1;
    return Math.min(seconds, 10) * 1000;
  }
  if (err.status >= 500) return 250;
  return null;
}
