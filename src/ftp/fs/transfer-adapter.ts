// The one door through which RETR/STOR bytes move: the transfer engine (src/transfer). Main thread.
// Declared structurally here, so the FTP layer depends on the engine's API and not its internals.
// Invariants: a download Readable ends only after every byte was delivered (and verified for whole
// files); an upload's 'finish' means committed and verified; abort() commits nothing.

import type { Readable, Writable } from 'node:stream';
import type { CommittedFile } from './account-store.ts';

/** Opaque to the FTP layer except `offset`: how many bytes the kept session already holds. */
export interface ResumeToken {
  offset: number;
}

export interface EngineUpload extends Writable {
  /** The committed file (set before 'finish'). */
  readonly metadata?: CommittedFile | null;
  abort(reason?: string): void;
  /** After end(): the commit is on its way (abort() no longer recalls it). */
  readonly commitStarted: boolean;
  /** After a failure: how to continue the session, or null when it cannot be resumed. */
  interrupted(): Promise<ResumeToken | null>;
}

export interface TransferAdapter {
  openDownload(account: string, path: string, options: { offset?: number }): Readable;
  /** mode: how the commit meets a file at the path (the engine's CommitMode; default overwrite). */
  openUpload(account: string, path: string, options: { resume?: ResumeToken; clientModified?: Date; mode?: 'overwrite' | 'add' | { update: string } }): EngineUpload;
}
