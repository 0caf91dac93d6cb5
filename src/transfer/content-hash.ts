// Dropbox content_hash computed on a stream (shared/reference/dropbox-api.md §4): SHA-256 of the
// concatenated SHA-256 digests of each 4 MiB block. Any thread. Invariant: update() never buffers
// data — it feeds the current block's hash incrementally, so memory is constant per transfer.

import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';

export const BLOCK_BYTES = 4 * 1024 * 1024;

export class ContentHasher {
  private block: Hash = createHash('sha256');
  private blockFill = 0;
  private readonly digests: Buffer[] = [];
  /** Bytes hashed so far. */
  byteLength = 0;

  /** A hasher that continues after `digests` (hex) of whole blocks already hashed elsewhere. */
  static resume(blockDigestsHex: readonly string[]): ContentHasher {
    const h = new ContentHasher();
    for (const hex of blockDigestsHex) h.digests.push(Buffer.from(hex, 'hex'));
    h.byteLength = blockDigestsHex.length * BLOCK_BYTES;
    return h;
  }

  /** Hex digests of the whole blocks hashed so far (a partial last block is not included). */
  blockDigests(): string[] {
    return this.digests.map((d) => d.toString('hex'));
  }

  update(data: Uint8Array): void {
    let offset = 0;
    while (offset < data.length) {
      const take = Math.min(BLOCK_BYTES - this.blockFill, data.length - offset);
      this.block.update(offset === 0 && take === data.length ? data : data.subarray(offset, offset + take));
      this.blockFill += take;
      offset += take;
      if (this.blockFill === BLOCK_BYTES) {
        this.digests.push(this.block.digest());
        this.block = createHash('sha256');
        this.blockFill = 0;
      }
    }
    this.byteLength += data.length;
  }

  /**
   * The content_hash of the bytes [fromBlock × 4 MiB, toBlock × 4 MiB) — whole blocks already hashed
   * — plus, with `withPartial`, the partial block being hashed now: what a request carrying exactly
   * those bytes must declare. null when those blocks are not all hashed yet.
   */
  rangeDigest(fromBlock: number, toBlock: number, withPartial: boolean): string | null {
    if (fromBlock < 0 || toBlock < fromBlock || toBlock > this.digests.length) return null;
    if (withPartial && toBlock !== this.digests.length) return null;
    const outer = createHash('sha256');
    for (let i = fromBlock; i < toBlock; i++) outer.update(this.digests[i]!);
    if (withPartial && this.blockFill > 0) outer.update(this.block.copy().digest());
    return outer.digest('hex');
  }

  /** The lowercase hex content_hash of everything passed to update(); the hasher stays usable. */
  digest(): string {
    const outer = createHash('sha256');
    for (const d of this.digests) outer.update(d);
    if (this.blockFill > 0) outer.update(this.block.copy().digest());
    return outer.digest('hex');
  }
}

/** content_hash of a whole buffer (tests, small bodies). */
export function contentHash(data: Uint8Array): string {
  const h = new ContentHasher();
  h.update(data);
  return h.digest();
}

/** The content_hash of one request body: what the per-request `content_hash` arg of start/append covers (§4). */
export function requestContentHash(body: Uint8Array): string {
  return contentHash(body);
}
