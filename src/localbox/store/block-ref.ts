// A reference to one stored block of the local box (its hash names the file in the block store).
// Shared by the block store, its reader and the namespace tables; imports nothing. Local box child.

export interface BlockRef {
  hash: string; // sha256 hex of the block's bytes
  len: number; // bytes, 1..BLOCK_BYTES
}
