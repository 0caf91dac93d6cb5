// The one table mapping DROPFTP_ERR_* codes to the small integers that cross a ring header
// (PRODUCER_ERROR / CONSUMER_ERROR words). Any thread. Invariants: append only — a number is never
// reused or renumbered; 0 means "no error"; 1 is the ring's default abort code (abort()
// without a code), read as DROPFTP_ERR_ABORTED.

import { DropftpError } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';

const TABLE: readonly ErrorCode[] = [
  'DROPFTP_ERR_ABORTED', // 1 (= abort()'s default code in native-free-ringbuf)
  'DROPFTP_ERR_CLIENT_GONE', // 2
  'DROPFTP_ERR_NOT_FOUND', // 3
  'DROPFTP_ERR_NOT_A_FILE', // 4
  'DROPFTP_ERR_BAD_PATH', // 5
  'DROPFTP_ERR_PERMISSION', // 6
  'DROPFTP_ERR_INSUFFICIENT_SPACE', // 7
  'DROPFTP_ERR_RATE_LIMITED', // 8
  'DROPFTP_ERR_UPSTREAM', // 9
  'DROPFTP_ERR_UPSTREAM_AUTH', // 10
  'DROPFTP_ERR_INTEGRITY', // 11
  'DROPFTP_ERR_COMMIT_FAILED', // 12
  'DROPFTP_ERR_STALLED', // 13
  'DROPFTP_ERR_BAD_OFFSET', // 14
  'DROPFTP_ERR_WORKER_CRASHED', // 15
  'DROPFTP_ERR_SHUTTING_DOWN', // 16
  'DROPFTP_ERR_OVERLOADED', // 17
  'DROPFTP_ERR_INTERNAL', // 18
  'DROPFTP_ERR_EXISTS', // 19
  'DROPFTP_ERR_NOT_A_FOLDER', // 20
  'DROPFTP_ERR_LOCAL_SPACE', // 21
  'DROPFTP_ERR_UPSTREAM_MALFORMED', // 22
];

const BY_CODE = new Map<ErrorCode, number>(TABLE.map((code, i) => [code, i + 1]));

/** The ring integer for a code; codes missing from the table travel as DROPFTP_ERR_INTERNAL. */
export function ringCodeFor(code: ErrorCode): number {
  return BY_CODE.get(code) ?? BY_CODE.get('DROPFTP_ERR_INTERNAL')!;
}

/** The code for a ring integer; 0 and unknown numbers read as DROPFTP_ERR_INTERNAL. */
export function codeForRing(ringCode: number): ErrorCode {
  return TABLE[ringCode - 1] ?? 'DROPFTP_ERR_INTERNAL';
}

/** The ring integer for any error that destroys a stream. */
export function ringCodeForError(err: unknown): number {
  return err instanceof DropftpError ? ringCodeFor(err.code) : ringCodeFor('DROPFTP_ERR_ABORTED');
}

export const RING_CODE_COUNT = TABLE.length;
