// The lock that makes one local box the only user of its data directory: an exclusive SQLite lock
// (a POSIX fcntl lock underneath) on DIR/lock.sqlite, held while the box runs; the kernel drops it
// when the holder dies, kill -9 included. Runs on the thread that opens the box. Invariants: the
// lock alone decides (DIR/lock-holder.json only names the holder's pid and its gateway's pid for
// the message, so a stale or reused pid there never stops a start); a busy lock waits a bounded time.

import Database from 'better-sqlite3';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DropftpError } from '../errors.ts';

export const LOCK_FILE = 'lock.sqlite';
export const HOLDER_FILE = 'lock-holder.json';

/** Who holds a data directory (as recorded by the holder; for messages only). */
export interface LockHolder {
  pid: number;
  /** The gateway (dropftp serve) that started the holder, null for `dropftp localbox`. */
  gatewayPid: number | null;
  sinceIso: string;
}

export interface AcquireOptions {
  /** The gateway pid to record; default: the parent when connected to it over IPC, else null. */
  gatewayPid?: number | null;
  /**
   * How long to wait when the holder is an orphan (its gateway is gone) or a previous child of our
   * own gateway, which are finishing and about to exit. Default 10 s.
   */
  finishingWaitMs?: number;
  /** How long to wait for any other holder (covers one that is just exiting). Default 1 s. */
  busyWaitMs?: number;
}

const POLL_MS = 100;

/** Whether pid runs (a zombie does not: it holds no lock, whatever its reaper's delay). */
function alive(pid: number | null | undefined): boolean {
  if (!pid || !Number.isInteger(pid) || pid <= 0) return false;
  try {
    return !/^\d+ \(.*\) [ZX]/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(dir: string): LockHolder | null {
  try {
    const value = JSON.parse(readFileSync(join(dir, HOLDER_FILE), 'utf8')) as Partial<LockHolder>;
    if (typeof value.pid !== 'number') return null;
    return { pid: value.pid, gatewayPid: typeof value.gatewayPid === 'number' ? value.gatewayPid : null, sinceIso: String(value.sinceIso ?? '') };
  } catch {
    return null;
  }
}

function describe(dir: string, holder: LockHolder | null): string {
  if (!holder || !alive(holder.pid)) return `data directory ${dir} is in use by another local box (pid unknown: it has not recorded itself yet)`;
  const gateway = holder.gatewayPid === null ? 'run by `dropftp localbox`' : alive(holder.gatewayPid) ? `started by dropftp serve pid ${holder.gatewayPid}` : `orphan of dropftp serve pid ${holder.gatewayPid}, which has exited`;
  return `data directory ${dir} is in use by local box pid ${holder.pid} (${gateway}, since ${holder.sinceIso}); stop it first, or use another --data-dir`;
}

/** Tries once; the open connection holding the lock, or null when another process holds it. */
function tryLock(path: string): Database.Database | null {
  const db = new Database(path, { timeout: 0 });
  try {
    db.pragma('journal_mode = OFF');
    db.pragma('locking_mode = EXCLUSIVE');
    // The first write takes the exclusive lock; in EXCLUSIVE locking mode it is never given back
    // until the connection closes (https://sqlite.org/pragma.html#pragma_locking_mode).
    db.exec('BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS held (at TEXT); DELETE FROM held; INSERT INTO held VALUES (datetime()); COMMIT');
    return db;
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY' || (err as { code?: string }).code === 'SQLITE_LOCKED') return null;
    throw err;
  }
}

export class DataLock {
  #db: Database.Database | null;

  private constructor(
    readonly dir: string,
    db: Database.Database,
    readonly holder: LockHolder,
  ) {
    this.#db = db;
  }

  /**
   * Takes the lock on `dir` (created 0700 if missing) or throws DROPFTP_ERR_DATA_DIR_LOCKED naming
   * the holder, after waiting at most finishingWaitMs (a holder that is on its way out) or busyWaitMs.
   */
  static async acquire(dir: string, options: AcquireOptions = {}): Promise<DataLock> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const gatewayPid = options.gatewayPid !== undefined ? options.gatewayPid : process.connected ? process.ppid : null;
    const startMs = Date.now();
    for (;;) {
      const db = tryLock(join(dir, LOCK_FILE));
      if (db) {
        const holder: LockHolder = { pid: process.pid, gatewayPid, sinceIso: new Date().toISOString() };
        const tmp = join(dir, `${HOLDER_FILE}.${process.pid}.tmp`);
        writeFileSync(tmp, JSON.stringify(holder) + '\n', { mode: 0o600 });
        renameSync(tmp, join(dir, HOLDER_FILE));
        return new DataLock(dir, db, holder);
      }
      const holder = readHolder(dir);
      const finishing = holder !== null && alive(holder.pid) && (holder.gatewayPid === null ? false : !alive(holder.gatewayPid) || holder.gatewayPid === gatewayPid);
      const waitMs = finishing ? (options.finishingWaitMs ?? 10_000) : (options.busyWaitMs ?? 1_000);
      if (Date.now() - startMs >= waitMs) {
        const still = finishing ? ` (still running after ${Math.round((Date.now() - startMs) / 1000)} s)` : '';
        throw new DropftpError('DROPFTP_ERR_DATA_DIR_LOCKED', describe(dir, holder) + still);
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  get held(): boolean {
    return this.#db !== null;
  }

  /** Gives the lock back (the holder file stays: it is only read while the lock is held). */
  release(): void {
    const db = this.#db;
    this.#db = null;
    db?.close();
  }
}
