// The wire format between the main thread and the transfer workers: one task per transfer (posted
// once through piscina, structured clone; the SABs inside are shared, not copied; the control block
// is not among them: each worker got it once, in workerData) and one result.
// Main thread and workers. Invariants: nothing here is an Error or a class instance; errors are
// { code, message } (src/errors.ts WireError); a task function never throws — it returns a result.

import type { RingHandle } from 'native-free-ringbuf';
import type { WireError } from '../errors.ts';

export interface AccountWire {
  readonly slot: number;
  readonly name: string;
  readonly apiUrl: string;
  readonly contentUrl: string;
  /** The account's current access token (token-cell.ts; shared, so a refresh reaches running transfers). */
  readonly tokenCell: SharedArrayBuffer;
}

/** Dropbox FileMetadata, the fields the engine reads (shared/reference/dropbox-api.md §3.8). */
export interface FileMetadata {
  name: string;
  id: string;
  path_lower?: string;
  path_display?: string;
  rev: string;
  size: number;
  content_hash?: string;
  client_modified?: string;
  server_modified?: string;
  [field: string]: unknown;
}

/** Test-only hooks; never set outside test/engine. */
export interface TestHooks {
  /** The worker running this transfer calls process.exit(70) once this many bytes moved. */
  crashWorkerAfterBytes?: number;
  /** An upload's client may be this many bytes ahead of Dropbox (instead of its share of the rate). */
  leadBytes?: number;
}

export interface DownloadTask {
  kind: 'download';
  id: number;
  ring: RingHandle;
  account: AccountWire;
  path: string;
  offset: number;
  test?: TestHooks;
}

/**
 * A resumable point in an interrupted upload session. The client resends from `offset` (a 4 MiB
 * block boundary, so the hash can continue from `blockDigests`); the session already holds
 * `sessionOffset` ≥ offset bytes, and the bytes in between are hashed again but not re-sent.
 */
export interface UploadResumeToken {
  sessionId: string;
  offset: number;
  sessionOffset: number;
  blockDigests: string[];
}

export interface UploadTask {
  kind: 'upload';
  id: number;
  ring: RingHandle;
  account: AccountWire;
  path: string;
  resume?: UploadResumeToken;
  /** Folder for this upload's spool files ('' : no spool, retention in memory only). */
  spoolDir: string;
  test?: TestHooks;
}

export type EngineTask = DownloadTask | UploadTask;

export interface DownloadDone {
  ok: true;
  kind: 'download';
  metadata: FileMetadata;
  byteLength: number;
  /** True when the whole file was hashed and matched content_hash (reads from offset 0). */
  verified: boolean;
}

export interface UploadReady {
  ok: true;
  kind: 'upload';
  sessionId: string;
  byteLength: number;
  contentHash: string;
}

export interface TaskFailed {
  ok: false;
  error: WireError;
  /** Uploads: where an interrupted session may be resumed (absent when nothing was appended). */
  resume?: UploadResumeToken;
}

export type TaskResult = DownloadDone | UploadReady | TaskFailed;
