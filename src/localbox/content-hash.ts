// Dropbox content_hash (reference §4): SHA-256 over the concatenated SHA-256 digests of 4 MiB blocks.
// Any thread. Invariant: the empty input hashes to sha256("") (no blocks).

import { createHash, type Hash } from 'node:crypto';
import { BLOCK_BYTES } from './types.ts';

/** content_hash from the hex SHA-256 digests of the blocks, in order. */
export function contentHashOfBlocks(blockHashesHex: readonly string[]): string {
  const outer = createHash('sha256');
  for (const h of blockHashesHex) outer.update(Buffer.from(h, 'hex'));
  return outer.digest('hex');
}

/** Incremental content_hash over a byte stream of any chunking. */
export class ContentHasher {
  private readonly outer = createHash('sha256');
  private inner: Hash | null = null;
  private innerBytes = 0;

  update(chunk: Buffer): this {
    let off = 0;
    while (off < chunk.length) {
      if (!this.inner) this.inner = createHash('sha256');
      const take = Math.min(chunk.length - off, BLOCK_BYTES - this.innerBytes);
      this.inner.update(off === 0 && take === chunk.length ? chunk : chunk.subarray(off, off + take));
      this.innerBytes += take;
      off += take;
      if (this.innerBytes === BLOCK_BYTES) this.sealBlock();
    }
    return this;
  }

  digest(): string {
    if (this.inner && this.innerBytes > 0) this.sealBlock();
    return this.outer.digest('hex');
  }

  private sealBlock(): void {
    this.outer.update(this.inner!.digest());
    this.inner = null;
    this.innerBytes = 0;
  }
}

export function contentHash(data: Buffer): string {
  return new ContentHasher().update(data).digest();
}
