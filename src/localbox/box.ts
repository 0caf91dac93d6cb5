// The local box's state: database, block store, accounts, namespaces, change feed, sessions, faults,
// Dropbox's limits, call counters (refusals logged once a second),
// and the garbage collector of unreferenced blocks. Runs in the local box child.
// Invariants: at start-up (nothing in flight) every block file and temp file that the database does
// not reference is deleted, so a crash at any moment leaves no orphan for ever; the same collection
// runs periodically while serving, sparing pinned (in-flight) blocks.

import { chmodSync, mkdirSync } from 'node:fs';
import { CallStats } from './call-stats.ts';
import { ChangeFeed } from './changelog.ts';
import { DataLock } from './data-lock.ts';
import { Faults } from './faults.ts';
import { Limits } from './limits.ts';
import { Sessions } from './sessions.ts';
import { Accounts } from './store/accounts.ts';
import { BlockStore } from './store/blocks.ts';
import { openDb, type Db } from './store/db.ts';
import { Namespaces } from './store/namespace.ts';
import type { ServerConfig } from './types.ts';

export class Box {
  readonly db: Db;
  readonly blocks: BlockStore;
  readonly accounts: Accounts;
  readonly ns: Namespaces;
  readonly feed: ChangeFeed;
  readonly sessions: Sessions;
  readonly faults: Faults;
  readonly calls = new CallStats();
  readonly limits: Limits;
  private gcTimer: NodeJS.Timeout | null = null;
  private logTimer: NodeJS.Timeout | null = null;
  private gcRunning = false;
  private lock: DataLock | null = null;

  private constructor(readonly config: ServerConfig) {
    // The database holds every account's tokens and app secret: the directory is the owner's only
    // (an existing one from an older run is closed too).
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    chmodSync(config.dataDir, 0o700);
    this.db = openDb(config.dataDir);
    this.blocks = new BlockStore(config.dataDir);
    this.accounts = new Accounts(this.db);
    this.feed = new ChangeFeed(this.db);
    this.ns = new Namespaces(this.db, (ns) => this.feed.wake(ns));
    this.sessions = new Sessions(this.db, this.blocks, config.dataDir);
    this.faults = new Faults(config.faults);
    this.limits = new Limits(config.limits);
  }

  static async open(config: ServerConfig): Promise<Box> {
    // One box per data directory (issue 18): before anything is read, collected or written.
    const lock = await DataLock.acquire(config.dataDir);
    let box: Box;
    try {
      box = new Box(config);
    } catch (err) {
      lock.release();
      throw err;
    }
    box.lock = lock;
    // before the first collection: a partial block sealed just before a crash is moved into place
    const referenced = box.db.prepare('SELECT 1 FROM file_blocks WHERE hash = ? UNION ALL SELECT 1 FROM session_blocks WHERE hash = ? LIMIT 1');
    box.sessions.recoverPartials((h) => referenced.get(h, h) !== undefined);
    box.sessions.expire();
    await box.gc();
    if (config.gcIntervalMs > 0) {
      box.gcTimer = setInterval(() => {
        box.sessions.expire();
        void box.gc();
      }, config.gcIntervalMs);
      box.gcTimer.unref();
    }
    // Limit refusals reach the log at most once a second, summed by account and kind.
    box.logTimer = setInterval(() => {
      const line = box.calls.takeLogLine();
      if (line) process.stderr.write(`localbox: ${line}\n`);
    }, 1000);
    box.logTimer.unref();
    return box;
  }

  /** Every block hash the database references (committed files and open sessions). */
  referencedHashes(): Set<string> {
    const rows = this.db
      .prepare('SELECT hash FROM file_blocks UNION SELECT hash FROM session_blocks')
      .raw()
      .all() as [string][];
    return new Set(rows.map((r) => r[0]));
  }

  async gc(): Promise<{ deletedBlocks: number; deletedTmp: number }> {
    if (this.gcRunning) return { deletedBlocks: 0, deletedTmp: 0 };
    this.gcRunning = true;
    try {
      // Pins are taken before a block file is created and held until its database commit, and the
      // referenced set is read before listing files: so nothing in use can be collected.
      const check = this.db.prepare(
        'SELECT 1 FROM file_blocks WHERE hash = ? UNION ALL SELECT 1 FROM session_blocks WHERE hash = ? LIMIT 1',
      );
      return await this.blocks.gc(this.referencedHashes(), (h) => check.get(h, h) !== undefined);
    } finally {
      this.gcRunning = false;
    }
  }

  close(): void {
    if (this.gcTimer) clearInterval(this.gcTimer);
    if (this.logTimer) clearInterval(this.logTimer);
    this.feed.closeAll();
    this.db.close();
    this.lock?.release();
  }
}
