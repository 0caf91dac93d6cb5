// The file tree of every namespace: lookups, commits, folders, delete/move/copy, listings, all as
// SQLite transactions that also append to the change log. Runs in the local box child (synchronous).
// Invariants: a commit is all-or-nothing; paths are unique per namespace case-insensitively; a
// file's blocks (file_blocks) exist for exactly its current rev; every visible change has a log row.

import { randomBytes } from 'node:crypto';
import type { Union } from '../api-errors.ts';
import { conflict, lookup } from '../api-errors.ts';
import { deletedJson, metadataJson, timestamp, type EntryRow } from '../metadata.ts';
import { autorename, baseName, lower, parentOf, type ParsedPath } from '../paths.ts';
import type { BlockRef } from './blocks.ts';
import { nextCounter, type Db } from './db.ts';

/** A failure of a namespace operation: `where` says which member of the route's error union it belongs to. */
export class NsError extends Error {
  constructor(
    readonly where: 'lookup' | 'write' | 'top',
    readonly union: Union,
  ) {
    super(JSON.stringify(union));
  }
}

export interface CommitOptions {
  mode: 'add' | 'overwrite' | 'update';
  updateRev?: string;
  autorename: boolean;
  clientModified?: string;
  strictConflict: boolean;
}

export interface FileContent {
  blocks: BlockRef[];
  size: number;
  contentHash: string;
}

const MAX_MOVE_ITEMS = 10_000;

function statements(d: Db) {
  return {
    get: d.prepare('SELECT * FROM entries WHERE ns = ? AND path_lower = ?'),
    byId: d.prepare('SELECT * FROM entries WHERE id = ?'),
    byRev: d.prepare('SELECT * FROM entries WHERE rev = ?'),
    insert: d.prepare(`INSERT INTO entries (ns, path_lower, parent_lower, path_display, name, tag, id, rev, size,
      content_hash, client_modified, server_modified) VALUES (@ns, @path_lower, @parent_lower, @path_display, @name,
      @tag, @id, @rev, @size, @content_hash, @client_modified, @server_modified)`),
    del: d.prepare('DELETE FROM entries WHERE ns = ? AND path_lower = ?'),
    subtree: d.prepare('SELECT * FROM entries WHERE ns = ? AND path_lower > ? AND path_lower < ? ORDER BY path_lower'),
    blocks: d.prepare('SELECT hash, idx FROM file_blocks WHERE rev = ? ORDER BY idx'),
    addBlock: d.prepare('INSERT INTO file_blocks (rev, idx, hash) VALUES (?, ?, ?)'),
    dropBlocks: d.prepare('DELETE FROM file_blocks WHERE rev = ?'),
    copyBlocks: d.prepare('INSERT INTO file_blocks (rev, idx, hash) SELECT ?, idx, hash FROM file_blocks WHERE rev = ?'),
    log: d.prepare('INSERT INTO changes (ns, path_lower, parent_lower, meta) VALUES (?, ?, ?, ?)'),
    used: d.prepare("SELECT COALESCE(SUM(size), 0) AS used FROM entries WHERE ns = ? AND tag = 'file'"),
  };
}

export class Namespaces {
  constructor(
    private readonly db: Db,
    private readonly onChange: (ns: number) => void,
  ) {
    this.stmt = statements(db);
  }

  private readonly stmt: ReturnType<typeof statements>;

  get(ns: number, pathLower: string): EntryRow | undefined {
    return this.stmt.get.get(ns, pathLower) as EntryRow | undefined;
  }

  /** Block list of a file version (sizes from the file size: all blocks full but the last). */
  blocksOf(row: EntryRow): BlockRef[] {
    const rows = this.stmt.blocks.all(row.rev) as { hash: string; idx: number }[];
    const size = row.size ?? 0;
    return rows.map((r, i) => ({ hash: r.hash, len: i < rows.length - 1 ? 4 * 1024 * 1024 : size - 4 * 1024 * 1024 * i }));
  }

  /** The display path a parsed path points at ("" = root), resolving ids; throws lookup not_found for unknown ids. */
  displayOf(ns: number, p: ParsedPath): string {
    switch (p.kind) {
      case 'malformed':
        throw new NsError('lookup', { '.tag': 'malformed_path' });
      case 'path':
        return p.display;
      case 'rev': {
        const row = this.stmt.byRev.get(p.rev) as EntryRow | undefined;
        if (!row || row.ns !== ns) throw new NsError('lookup', lookup('not_found'));
        return row.path_display;
      }
      case 'id': {
        const row = this.stmt.byId.get(p.id) as EntryRow | undefined;
        if (!row || row.ns !== ns) throw new NsError('lookup', lookup('not_found'));
        return row.path_display + p.rest;
      }
    }
  }

  /** The entry at a parsed path, or a lookup not_found. */
  resolve(ns: number, p: ParsedPath): EntryRow {
    const display = this.displayOf(ns, p);
    const row = display === '' ? undefined : this.get(ns, lower(display));
    if (!row) throw new NsError('lookup', lookup('not_found'));
    return row;
  }

  spaceUsed(ns: number): number {
    return (this.stmt.used.get(ns) as { used: number }).used;
  }

  private newRev(): string {
    return (0x5a0000000000 + nextCounter(this.db, 'rev', 1)).toString(16);
  }

  private log(ns: number, row: EntryRow, meta: Record<string, unknown>): void {
    this.stmt.log.run(ns, row.path_lower, row.parent_lower, JSON.stringify(meta));
  }

  private notify(ns: number): void {
    setImmediate(() => this.onChange(ns));
  }

  /** Creates missing ancestors of `display` as folders; a file among them is a file_ancestor conflict. Returns the parent's display path. */
  private ensureParents(ns: number, display: string): string {
    const parent = parentOf(display);
    if (parent === '') return '';
    const row = this.get(ns, lower(parent));
    if (row) {
      if (row.tag === 'file') throw new NsError('write', conflict('file_ancestor'));
      return row.path_display;
    }
    const grand = this.ensureParents(ns, parent);
    return this.insertFolder(ns, `${grand}/${baseName(parent)}`).path_display;
  }

  private insertFolder(ns: number, display: string): EntryRow {
    const row: EntryRow = {
      ns,
      path_lower: lower(display),
      parent_lower: lower(parentOf(display)),
      path_display: display,
      name: baseName(display),
      tag: 'folder',
      id: newId(),
      rev: null,
      size: null,
      content_hash: null,
      client_modified: null,
      server_modified: null,
    };
    this.stmt.insert.run(row);
    this.log(ns, row, metadataJson(row));
    return row;
  }

  private taken = (ns: number) => (candidateLower: string) => this.get(ns, candidateLower) !== undefined;

  /** Commits a file version (reference §3.1 write modes). Returns the resulting (or unchanged) entry. */
  commitFile(ns: number, display: string, opts: CommitOptions, content: FileContent): EntryRow {
    const result = this.db.transaction((): EntryRow => {
      let target = display;
      let existing = this.get(ns, lower(target));
      if (existing?.tag === 'file' && existing.content_hash === content.contentHash && !opts.strictConflict) {
        return existing; // same content: nothing written, no conflict
      }
      let conflictKind: 'file' | 'folder' | null = null;
      if (existing?.tag === 'folder') conflictKind = 'folder';
      else if (existing && opts.mode === 'add') conflictKind = 'file';
      else if (existing && opts.mode === 'update' && existing.rev !== opts.updateRev) conflictKind = 'file';
      else if (!existing && opts.mode === 'update' && opts.strictConflict) conflictKind = 'file';
      if (conflictKind) {
        if (!opts.autorename) throw new NsError('write', conflict(conflictKind));
        const suffix = opts.mode === 'update' ? 'conflicted copy' : undefined;
        target = autorename(target, true, this.taken(ns), suffix);
        existing = undefined;
      }
      const parentDisplay = this.ensureParents(ns, target);
      const rev = this.newRev();
      const now = timestamp();
      const row: EntryRow = {
        ns,
        path_lower: lower(target),
        parent_lower: lower(parentDisplay),
        path_display: `${parentDisplay}/${baseName(target)}`,
        name: baseName(target),
        tag: 'file',
        id: existing?.id ?? newId(),
        rev,
        size: content.size,
        content_hash: content.contentHash,
        client_modified: opts.clientModified ?? now,
        server_modified: now,
      };
      if (existing) {
        // overwrite keeps the id and the case of the stored name (Dropbox is case-preserving)
        row.name = existing.name;
        row.path_display = existing.path_display;
        this.stmt.dropBlocks.run(existing.rev);
        this.stmt.del.run(ns, existing.path_lower);
      }
      this.stmt.insert.run(row);
      content.blocks.forEach((b, i) => this.stmt.addBlock.run(rev, i, b.hash));
      this.log(ns, row, metadataJson(row));
      return row;
    })();
    this.notify(ns);
    return result;
  }

  createFolder(ns: number, display: string, autorenameFlag: boolean): EntryRow {
    const row = this.db.transaction((): EntryRow => {
      let target = display;
      const existing = this.get(ns, lower(target));
      if (existing) {
        if (!autorenameFlag) throw new NsError('write', conflict(existing.tag));
        target = autorename(target, false, this.taken(ns));
      }
      const parentDisplay = this.ensureParents(ns, target);
      return this.insertFolder(ns, `${parentDisplay}/${baseName(target)}`);
    })();
    this.notify(ns);
    return row;
  }

  private subtree(ns: number, row: EntryRow): EntryRow[] {
    if (row.tag === 'file') return [];
    return this.stmt.subtree.all(ns, `${row.path_lower}/`, `${row.path_lower}0`) as EntryRow[];
  }

  /** Deletes an entry and (for a folder) everything under it. Returns the entry as it was. */
  delete(ns: number, row: EntryRow): EntryRow {
    this.db.transaction(() => {
      const rows = [...this.subtree(ns, row).reverse(), row];
      for (const r of rows) {
        this.stmt.del.run(ns, r.path_lower);
        if (r.tag === 'file') this.stmt.dropBlocks.run(r.rev);
        this.log(ns, r, deletedJson(r));
      }
    })();
    this.notify(ns);
    return row;
  }

  /** Moves or copies `from` to `toDisplay` (reference §3.7). Returns the new entry. */
  relocate(ns: number, from: EntryRow, toDisplay: string, autorenameFlag: boolean, copy: boolean): EntryRow {
    const result = this.db.transaction((): EntryRow => {
      let target = toDisplay;
      const toLower = lower(target);
      if (toLower === from.path_lower || toLower.startsWith(`${from.path_lower}/`)) {
        if (toLower !== from.path_lower || copy) {
          throw new NsError('top', { '.tag': copy ? 'cant_copy_into_itself' : 'cant_move_folder_into_itself' });
        }
      }
      const existing = this.get(ns, toLower);
      if (existing) {
        if (!autorenameFlag) throw new NsError('write', conflict(existing.tag));
        target = autorename(target, from.tag === 'file', this.taken(ns));
      }
      const descendants = this.subtree(ns, from);
      if (descendants.length + 1 > MAX_MOVE_ITEMS) throw new NsError('top', { '.tag': 'too_many_files' });
      const parentDisplay = this.ensureParents(ns, target);
      const newRoot = `${parentDisplay}/${baseName(target)}`;
      const moved: EntryRow[] = [];
      for (const r of [from, ...descendants]) {
        const display = newRoot + r.path_display.slice(from.path_display.length);
        const nr: EntryRow = {
          ...r,
          path_display: display,
          path_lower: lower(display),
          parent_lower: lower(parentOf(display)),
          name: baseName(display),
        };
        if (copy) {
          nr.id = newId();
          if (r.tag === 'file') {
            nr.rev = this.newRev();
            nr.server_modified = timestamp();
            this.stmt.copyBlocks.run(nr.rev, r.rev);
          }
        } else {
          this.stmt.del.run(ns, r.path_lower);
          this.log(ns, r, deletedJson(r));
        }
        moved.push(nr);
      }
      for (const nr of moved) {
        this.stmt.insert.run(nr);
        this.log(ns, nr, metadataJson(nr));
      }
      return moved[0]!;
    })();
    this.notify(ns);
    return result;
  }
}

function newId(): string {
  return `id:${randomBytes(16).toString('base64url')}`;
}
