// The local box's SQLite database: schema and pragmas. Runs in the local box child (synchronous
// better-sqlite3 calls on its one thread). Invariants: WAL journal, every multi-row change inside one
// transaction; block files are referenced only through file_blocks and session_blocks; a sequential
// session's block being filled is a partial file (store/partials.ts) named by its session_partial row.

import Database from 'better-sqlite3';
import { join } from 'node:path';

export type Db = Database.Database;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
  name TEXT PRIMARY KEY, account_id TEXT NOT NULL UNIQUE, ns INTEGER NOT NULL UNIQUE,
  app_key TEXT NOT NULL, app_secret TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
  token TEXT PRIMARY KEY, account TEXT NOT NULL, kind TEXT NOT NULL, expired INTEGER NOT NULL DEFAULT 0,
  revoked INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL, family TEXT);
CREATE INDEX IF NOT EXISTS tokens_account ON tokens(account, kind);
CREATE TABLE IF NOT EXISTS auth_codes (
  code TEXT PRIMARY KEY, account TEXT NOT NULL, challenge TEXT, method TEXT, redirect_uri TEXT,
  expires_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
  ns INTEGER NOT NULL, path_lower TEXT NOT NULL, parent_lower TEXT NOT NULL, path_display TEXT NOT NULL,
  name TEXT NOT NULL, tag TEXT NOT NULL, id TEXT NOT NULL UNIQUE, rev TEXT, size INTEGER,
  content_hash TEXT, client_modified TEXT, server_modified TEXT,
  PRIMARY KEY (ns, path_lower)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_parent ON entries(ns, parent_lower);
CREATE INDEX IF NOT EXISTS entries_rev ON entries(rev);
CREATE TABLE IF NOT EXISTS file_blocks (
  rev TEXT NOT NULL, idx INTEGER NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (rev, idx)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS file_blocks_hash ON file_blocks(hash);
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY, ns INTEGER NOT NULL, concurrent INTEGER NOT NULL, offset INTEGER NOT NULL,
  closed INTEGER NOT NULL DEFAULT 0, finished INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS session_blocks (
  session TEXT NOT NULL, idx INTEGER NOT NULL, hash TEXT NOT NULL, len INTEGER NOT NULL,
  PRIMARY KEY (session, idx)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS session_blocks_hash ON session_blocks(hash);
CREATE TABLE IF NOT EXISTS session_partial (
  session TEXT PRIMARY KEY, idx INTEGER NOT NULL, len INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, ns INTEGER NOT NULL, path_lower TEXT NOT NULL,
  parent_lower TEXT NOT NULL, meta TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS changes_ns ON changes(ns, seq);
CREATE TABLE IF NOT EXISTS batch_jobs (id TEXT PRIMARY KEY, result TEXT NOT NULL, created_ms INTEGER NOT NULL);
`;

export function openDb(dataDir: string): Db {
  const db = new Database(join(dataDir, 'localbox.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL'); // durable across process crashes (kill -9); see report on power loss
  db.pragma('foreign_keys = OFF');
  db.pragma('busy_timeout = 5000');
  db.exec(SCHEMA);
  // Boxes made before tokens had a family (the refresh token an access token was minted from).
  const tokenColumns = db.prepare('PRAGMA table_info(tokens)').all() as { name: string }[];
  if (!tokenColumns.some((c) => c.name === 'family')) db.exec('ALTER TABLE tokens ADD COLUMN family TEXT');
  return db;
}

/** A monotonically increasing counter kept in `meta` (used for revs and namespace ids). */
export function nextCounter(db: Db, key: string, start: number): number {
  const row = db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
  const next = row ? Number(row.value) + 1 : start;
  db.prepare('INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(
    key,
    String(next),
  );
  return next;
}
