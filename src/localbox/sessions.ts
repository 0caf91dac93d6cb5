// Upload sessions (reference §3.3): sequential and concurrent sessions whose data is kept as block
// refs (session_blocks) plus, for a sequential one, the block being filled (session_partial, a file
// of store/partials.ts that each append extends in place: no byte is copied, none hashed twice),
// offset checks, close, and the hand-over of a finished session's blocks to a file commit.
// Runs in the local box child. Invariants: session rows change only in transactions after the bytes
// they describe are on disk; a failed append changes no row; one append at a time per sequential
// session; the database work of an append is a few keyed rows, whatever the session's size.

import { randomBytes } from 'node:crypto';
import type { Union } from './api-errors.ts';
import type { Body } from './context.ts';
import { contentHashOfBlocks, ContentHasher } from './content-hash.ts';
import { BlockHash, bothWaits, hashBackpressure } from './store/block-hash.ts';
import type { BlockRef, BlockStore } from './store/blocks.ts';
import type { Db } from './store/db.ts';
import { PartialBlocks } from './store/partials.ts';
import { WriteQueue } from './store/write-queue.ts';
import { BLOCK_BYTES } from './types.ts';

const SESSION_TTL_MS = 7 * 24 * 3600 * 1000;
export const MAX_REQUEST_BYTES = 150 * 1024 * 1024;
export const MAX_SESSION_BYTES = 2 ** 41 - 2 ** 22;

export interface SessionRow {
  id: string;
  ns: number;
  concurrent: number;
  offset: number;
  closed: number;
  finished: number;
  created_ms: number;
}

/** A session lookup failure: an UploadSessionLookupError union (append_v2 errors are exactly these). */
export class SessionError extends Error {
  constructor(readonly union: Union) {
    super(union['.tag']);
  }
}

function statements(d: Db) {
  return {
    get: d.prepare('SELECT * FROM sessions WHERE id = ?'),
    insert: d.prepare('INSERT INTO sessions (id, ns, concurrent, offset, closed, created_ms) VALUES (?, ?, ?, 0, 0, ?)'),
    rows: d.prepare('SELECT idx, hash, len FROM session_blocks WHERE session = ? ORDER BY idx'),
    last: d.prepare('SELECT idx, hash, len FROM session_blocks WHERE session = ? ORDER BY idx DESC LIMIT 1'),
    putBlock: d.prepare('INSERT OR REPLACE INTO session_blocks (session, idx, hash, len) VALUES (?, ?, ?, ?)'),
    update: d.prepare('UPDATE sessions SET offset = ?, closed = ? WHERE id = ?'),
    drop: d.prepare('DELETE FROM sessions WHERE id = ?'),
    dropBlocks: d.prepare('DELETE FROM session_blocks WHERE session = ?'),
    partial: d.prepare('SELECT idx, len FROM session_partial WHERE session = ?'),
    putPartial: d.prepare('INSERT OR REPLACE INTO session_partial (session, idx, len) VALUES (?, ?, ?)'),
    dropPartial: d.prepare('DELETE FROM session_partial WHERE session = ?'),
    allPartials: d.prepare('SELECT session, idx FROM session_partial'),
    expired: d.prepare('SELECT id FROM sessions WHERE created_ms < ?'),
  };
}

export class Sessions {
  private readonly busy = new Set<string>();
  readonly partials: PartialBlocks;

  constructor(
    private readonly db: Db,
    private readonly blocks: BlockStore,
    dataDir: string,
  ) {
    this.stmt = statements(db);
    this.partials = new PartialBlocks(dataDir, blocks);
  }

  /** Start-up (nothing in flight): finishes seals a crash interrupted, deletes abandoned partials. */
  recoverPartials(referenced: (hash: string) => boolean): { moved: number; deleted: number } {
    const rows = this.stmt.allPartials.all() as { session: string; idx: number }[];
    return this.partials.recover(new Set(rows.map((r) => PartialBlocks.nameOf(r.session, r.idx))), referenced);
  }

  private readonly stmt: ReturnType<typeof statements>;

  create(ns: number, concurrent: boolean): string {
    const id = `pid_upload_session:${randomBytes(24).toString('base64url')}`;
    this.stmt.insert.run(id, ns, concurrent ? 1 : 0, Date.now());
    return id;
  }

  /** A closed sequential session holding already-stored blocks (files/upload's upload_session_id on conflict). */
  adopt(ns: number, blocks: BlockRef[], size: number): string {
    return this.db.transaction(() => {
      const id = this.create(ns, false);
      blocks.forEach((b, i) => this.stmt.putBlock.run(id, i, b.hash, b.len));
      this.stmt.update.run(size, 1, id);
      return id;
    })();
  }

  get(id: string, ns: number): SessionRow {
    const s = this.stmt.get.get(id) as SessionRow | undefined;
    if (!s || s.ns !== ns || s.created_ms < Date.now() - SESSION_TTL_MS) throw new SessionError({ '.tag': 'not_found' });
    return s;
  }

  /**
   * Appends `body` at `offset`. Checks offsets (sequential) or 4 MiB alignment (concurrent); `close`
   * forbids further appends. `expectHash` is the request's content_hash argument, if any.
   */
  async append(id: string, ns: number, offset: number, close: boolean, body: Body, expectHash?: string): Promise<void> {
    const s = this.get(id, ns);
    const concurrent = s.concurrent === 1;
    // a concurrent session's appends may arrive after the closing one, below its end
    if (s.closed && !(concurrent && offset < s.offset)) throw new SessionError({ '.tag': 'closed' });
    if (concurrent) {
      if (offset % BLOCK_BYTES !== 0) throw new SessionError({ '.tag': 'concurrent_session_invalid_offset' });
    } else if (offset !== s.offset || this.busy.has(id)) {
      throw new SessionError({ '.tag': 'incorrect_offset', correct_offset: s.offset });
    }
    if (!concurrent) {
      const partial = this.stmt.partial.get(id) as { idx: number; len: number } | undefined;
      // a session whose last block was sealed short (one from an older version) continues by copy
      if (partial || s.offset % BLOCK_BYTES === 0) {
        this.busy.add(id);
        try {
          return await this.appendInPlace(s, partial ?? null, close, body, expectHash);
        } finally {
          this.busy.delete(id);
        }
      }
    }
    if (!concurrent) this.busy.add(id);
    const writer = this.blocks.writer();
    // a concurrent append starts on a block boundary: its blocks are the request's own, so their
    // hashes give its content_hash; only a continuation by copy needs a second hash of the body
    const copying = !concurrent && s.offset % BLOCK_BYTES !== 0;
    const hasher = expectHash !== undefined && copying ? new ContentHasher() : null;
    try {
      let bytes = 0;
      let prefixed = false;
      await body((chunk, disposable) => {
        if (chunk.length === 0) return undefined;
        bytes += chunk.length;
        if (bytes > MAX_REQUEST_BYTES) throw new SessionError({ '.tag': 'payload_too_large' });
        hasher?.update(chunk);
        if (copying && !prefixed) {
          prefixed = true;
          const prefix = this.stmt.last.get(id) as BlockRef | undefined;
          if (prefix) return writer.writeFromBlock(prefix).then(() => writer.write(chunk, disposable));
        }
        return writer.write(chunk, disposable);
      });
      const refs = await writer.finish();
      if (expectHash !== undefined) {
        const got = hasher ? hasher.digest() : contentHashOfBlocks(refs.map((r) => r.hash));
        if (got !== expectHash) throw new SessionError({ '.tag': 'content_hash_mismatch' });
      }
      if (concurrent && !close && bytes % BLOCK_BYTES !== 0) throw new SessionError({ '.tag': 'concurrent_session_invalid_data_size' });
      if (offset + bytes > MAX_SESSION_BYTES) throw new SessionError({ '.tag': 'too_large' });
      this.db.transaction(() => {
        const now = this.stmt.get.get(id) as SessionRow | undefined;
        if (!now) throw new SessionError({ '.tag': 'not_found' });
        if (concurrent && now.closed && offset + bytes > now.offset) throw new SessionError({ '.tag': 'closed' });
        const firstIdx = Math.floor(offset / BLOCK_BYTES);
        refs.forEach((r, i) => this.stmt.putBlock.run(id, firstIdx + i, r.hash, r.len));
        // concurrent: `offset` column = end of data so far (exact once the closing append landed)
        const newOffset = concurrent ? (now.closed ? now.offset : close ? offset + bytes : Math.max(now.offset, offset + bytes)) : offset + bytes;
        this.stmt.update.run(newOffset, close || now.closed ? 1 : 0, id);
      })();
      writer.release();
    } catch (err) {
      await writer.abort();
      throw err;
    } finally {
      if (!concurrent) this.busy.delete(id);
    }
  }

  /**
   * A sequential append: the bytes go into the session's partial block file(s) at their final place,
   * hashed once as they arrive; each block that becomes whole (and the last one when `close`) is
   * sealed: referenced by its hash in the same transaction that moves the offset, then renamed into
   * blocks/. From a block boundary the request's content_hash comes from those block hashes.
   */
  private async appendInPlace(s: SessionRow, partial: { idx: number; len: number } | null, close: boolean, body: Body, expectHash: string | undefined): Promise<void> {
    const id = s.id;
    // the request's own content_hash needs a second hash only when it starts inside a block
    const hasher = expectHash !== undefined && partial ? new ContentHasher() : null;
    const sealed: { idx: number; name: string; hash: Promise<string>; len: number }[] = [];
    const created: string[] = []; // partial files this append started (deleted if it fails)
    const queue = new WriteQueue();
    let idx = partial ? partial.idx : Math.floor(s.offset / BLOCK_BYTES);
    let cur: { name: string; hasher: BlockHash; len: number } | null = null;
    let committed = false;
    try {
      if (partial) {
        const name = PartialBlocks.nameOf(id, idx);
        const { fh, hasher: h } = await this.partials.resume(name, partial.len);
        queue.open(this.partials.pathOf(name), 'r+', partial.len, fh);
        cur = { name, hasher: h, len: partial.len };
      }
      const seal = (): void => {
        queue.close();
        const hash = cur!.hasher.digest();
        hash.catch(() => {}); // awaited below, unless the append fails first
        sealed.push({ idx, name: cur!.name, hash, len: cur!.len });
        idx++;
        cur = null;
      };
      let bytes = 0;
      await body((chunk, disposable) => {
        if (chunk.length === 0) return undefined;
        bytes += chunk.length;
        if (bytes > MAX_REQUEST_BYTES) throw new SessionError({ '.tag': 'payload_too_large' });
        if (s.offset + bytes > MAX_SESSION_BYTES) throw new SessionError({ '.tag': 'too_large' });
        hasher?.update(chunk);
        for (let off = 0; off < chunk.length; ) {
          if (!cur) {
            const name = PartialBlocks.nameOf(id, idx);
            created.push(name);
            queue.open(this.partials.pathOf(name), 'w');
            cur = { name, hasher: new BlockHash(), len: 0 };
          }
          const take = Math.min(chunk.length - off, BLOCK_BYTES - cur.len);
          const part = off === 0 && take === chunk.length ? chunk : chunk.subarray(off, off + take);
          cur.hasher.update(part);
          queue.write(part, disposable && part === chunk);
          cur.len += take;
          off += take;
          if (cur.len === BLOCK_BYTES) seal();
        }
        return bothWaits(queue.backpressure(), hashBackpressure());
      });
      if (expectHash !== undefined) {
        const open = cur as { hasher: BlockHash; len: number } | null;
        const got = hasher ? hasher.digest() : contentHashOfBlocks([...(await Promise.all(sealed.map((b) => b.hash))), ...(open && open.len > 0 ? [await open.hasher.peek()] : [])]);
        if (got !== expectHash) throw new SessionError({ '.tag': 'content_hash_mismatch' });
      }
      if (cur && close) seal();
      if (cur) queue.close();
      await queue.drain();
      queue.end();
      const hashes = await Promise.all(sealed.map((b) => b.hash));
      const open = cur as { name: string; hasher: BlockHash; len: number } | null;
      this.db.transaction(() => {
        if (!this.stmt.get.get(id)) throw new SessionError({ '.tag': 'not_found' });
        sealed.forEach((b, i) => this.stmt.putBlock.run(id, b.idx, hashes[i]!, b.len));
        if (open) this.stmt.putPartial.run(id, idx, open.len);
        else this.stmt.dropPartial.run(id);
        this.stmt.update.run(s.offset + bytes, close ? 1 : 0, id);
      })();
      committed = true;
      sealed.forEach((b, i) => this.partials.placeSync(b.name, hashes[i]!));
      if (open) this.partials.keep(open.name, open.hasher, open.len);
    } finally {
      if (!committed) {
        (cur as { hasher: BlockHash } | null)?.hasher.dispose();
        await queue.abandon();
        for (const name of created) this.partials.discardSync(name);
      }
    }
  }

  /** Seals a sequential session's partial block (before its commit): a short last block in blocks/. */
  private sealPartial(id: string): void {
    const p = this.stmt.partial.get(id) as { idx: number; len: number } | undefined;
    if (!p) return;
    const name = PartialBlocks.nameOf(id, p.idx);
    const hash = this.partials.digestSync(name, p.len);
    this.db.transaction(() => {
      this.stmt.putBlock.run(id, p.idx, hash, p.len);
      this.stmt.dropPartial.run(id);
    })();
    this.partials.placeSync(name, hash);
  }

  /**
   * The blocks of a session ready to commit at `offset`. `needClosed` for finish_batch; concurrent
   * sessions must be closed and gap-free.
   */
  collect(id: string, ns: number, offset: number, needClosed: boolean): { blocks: BlockRef[]; size: number; contentHash: string } {
    const s = this.get(id, ns);
    const concurrent = s.concurrent === 1;
    if (concurrent && !s.closed) throw new SessionError({ '.tag': 'concurrent_session_not_closed' });
    if (needClosed && !s.closed) throw new SessionError({ '.tag': 'not_closed' });
    if (!concurrent) {
      // an append still in flight would go on writing into the block being sealed (finish's own
      // append refuses first; this keeps any other path from sealing under a writer)
      if (offset !== s.offset || this.busy.has(id)) throw new SessionError({ '.tag': 'incorrect_offset', correct_offset: s.offset });
      this.sealPartial(id);
    }
    const rows = this.stmt.rows.all(id) as { idx: number; hash: string; len: number }[];
    let size = 0;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      const full = r.len === BLOCK_BYTES;
      if (r.idx !== i || (!full && i !== rows.length - 1)) {
        if (concurrent) throw new SessionError({ '.tag': 'concurrent_session_missing_data' });
        throw new Error(`session ${id} has inconsistent blocks`);
      }
      size += r.len;
    }
    if (offset !== s.offset) throw new SessionError({ '.tag': 'incorrect_offset', correct_offset: s.offset });
    if (concurrent && size !== s.offset) throw new SessionError({ '.tag': 'concurrent_session_missing_data' });
    const blocks = rows.map((r) => ({ hash: r.hash, len: r.len }));
    return { blocks, size, contentHash: contentHashOfBlocks(blocks.map((b) => b.hash)) };
  }

  /** Removes a session (call inside the commit's transaction). */
  drop(id: string): void {
    this.stmt.dropBlocks.run(id);
    this.stmt.dropPartial.run(id);
    this.stmt.drop.run(id);
  }

  /**
   * Removes a session no client can name: its upload_session/start failed (a body cut short, a
   * refused argument), so its id never left the box. A failed append already abandons its blocks;
   * without this, each such start left its row until the 7-day expiry (and in the admin's count).
   */
  discard(id: string): void {
    this.dropWithPartials([id]);
  }

  isConcurrent(id: string, ns: number): boolean {
    return this.get(id, ns).concurrent === 1;
  }

  /** Deletes sessions older than 7 days; their blocks become garbage. */
  expire(): void {
    const ids = this.stmt.expired.all(Date.now() - SESSION_TTL_MS) as { id: string }[];
    this.dropWithPartials(ids.map((r) => r.id));
  }

  /** Removes sessions in one transaction, then their partial block files. */
  private dropWithPartials(ids: string[]): void {
    const partials = ids.flatMap((id) => {
      const p = this.stmt.partial.get(id) as { idx: number } | undefined;
      return p ? [PartialBlocks.nameOf(id, p.idx)] : [];
    });
    this.db.transaction(() => ids.forEach((id) => this.drop(id)))();
    for (const name of partials) this.partials.discardSync(name);
  }
}
