// The file-system view one FTP session has: client paths ('/' is the user's root, a jail) and the
// operations the commands need. Main thread. Invariants: every method takes an absolute client path
// from resolve(); errors are DropftpError whose client text never names a server path or a
// Dropbox internal; transfers go only through openRead/openWrite (the transfer engine).

import type { Readable, Writable } from 'node:stream';

export interface FileInfo {
  /** Last path component, in its real case. */
  name: string;
  isDirectory: boolean;
  size: number;
  mtime: Date;
  /** Stable id (Dropbox id:…); MLSD's unique fact. */
  id: string;
}

/** A Writable whose 'finish' means committed and verified; abort() commits nothing. */
export interface UploadSink extends Writable {
  abort(reason?: string): void;
  /**
   * After end(): true once the commit is on its way and can no longer be recalled (before that,
   * abort() still commits nothing). A sink without it counts as committing from its end().
   */
  readonly commitStarted?: boolean;
}

export interface SessionFs {
  /** Current directory, a client path. */
  readonly cwd: string;
  /** Client absolute path for an argument relative to cwd ('..' never climbs above '/'). */
  resolve(arg: string): string;
  stat(path: string): Promise<FileInfo>;
  list(path: string): Promise<FileInfo[]>;
  /** Changes cwd to a folder; returns the new cwd. */
  chdir(path: string): Promise<string>;
  mkdir(path: string): Promise<void>;
  /** Removes an empty folder; refuses a non-empty one or a file. */
  rmdir(path: string): Promise<void>;
  /** Removes a file; refuses a folder. */
  remove(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  openRead(path: string, options: { offset: number }): Promise<Readable>;
  /**
   * `ascii`: the bytes come converted from TYPE A. Such an upload never continues nor leaves a kept
   * session (its offsets count stored bytes, the client counts CRLF wire bytes): APPE over a kept
   * session is refused (DROPFTP_ERR_ASCII_RESUME).
   */
  /**
   * unique: STOU, the commit takes the name only if it is still free (nothing is overwritten).
   * continueKept: an APPE continues the path's kept upload session (the client was told its offset
   * by SIZE); without it an APPE appends to the file.
   */
  openWrite(path: string, options: { offset: number; append: boolean; ascii?: boolean; unique?: boolean; continueKept?: boolean }): Promise<UploadSink>;
  /** Throws DROPFTP_ERR_PERMISSION unless the user may do `permission` at `path` (mounts may be read-only). */
  check?(permission: 'list' | 'read' | 'write' | 'delete' | 'mkdir' | 'rename', path: string): void;
  /** What check() would grant at `path`, without throwing (MLSD perm facts ask it per entry). */
  permissionsAt?(path: string): ReadonlySet<'list' | 'read' | 'write' | 'delete' | 'mkdir' | 'rename'>;
  /** Bytes an interrupted upload of this path kept (for this user), or null. SIZE reports it. */
  keptUploadOffset?(path: string): number | null;
}
