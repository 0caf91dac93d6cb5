// This gateway's own writes, shown at once on top of the base tree until the change feed has
// certainly caught up with them. Main thread. Invariants: an item installed when `epoch` feed
// requests had been sent is dropped only when a feed chain (requests until has_more=false) whose
// first request was sent later has been applied — such a chain covers the write, so the base is
// then at least as new and nothing flaps back; a tombstone hides the base subtree below its path
// (writes below it still show); a file written over a path hides the base subtree below it.

import { parentOf, sameEntry, type CacheEntry, type Node } from './entry.ts';
import type { Tree } from './tree.ts';

interface Write {
  node: Node;
  epoch: number;
}

export class Overlay {
  readonly #writes = new Map<string, Write>();
  readonly #tombstones = new Map<string, number>();
  readonly #byParent = new Map<string, Set<string>>();

  get size(): number {
    return this.#writes.size + this.#tombstones.size;
  }

  write(node: Node, epoch: number): void {
    this.#deleteWrite(node.pathLower);
    this.#writes.set(node.pathLower, { node, epoch });
    const parent = parentOf(node.pathLower);
    let set = this.#byParent.get(parent);
    if (!set) this.#byParent.set(parent, (set = new Set()));
    set.add(node.pathLower);
  }

  /** Hides a path and its subtree, dropping own writes below it. */
  tombstone(pathLower: string, epoch: number): void {
    for (const p of [...this.#writes.keys()]) if (p === pathLower || p.startsWith(`${pathLower}/`)) this.#deleteWrite(p);
    for (const p of [...this.#tombstones.keys()]) if (p.startsWith(`${pathLower}/`)) this.#tombstones.delete(p);
    this.#tombstones.set(pathLower, epoch);
  }

  /** True if the overlay decides what `pathLower` looks like (base changes there are not visible). */
  masks(pathLower: string): boolean {
    if (this.size === 0) return false;
    if (this.#writes.has(pathLower)) return true;
    return this.#hiddenByAncestor(pathLower, true);
  }

  /** What a reader sees at `pathLower`. */
  visible(pathLower: string, base: Tree): CacheEntry | null {
    if (this.size === 0) return base.get(pathLower) ?? null;
    const own = this.#writes.get(pathLower);
    if (own) return own.node;
    if (this.#hiddenByAncestor(pathLower, true)) return null;
    return base.get(pathLower) ?? null;
  }

  /** The children a reader sees in folder `pathLower`, or null if it is not a visible folder. */
  children(pathLower: string, base: Tree): CacheEntry[] | null {
    const self = this.visible(pathLower, base);
    if (!self || self.tag !== 'folder') return null;
    const out: CacheEntry[] = [];
    const baseNode = base.get(pathLower);
    const baseHidden = this.size > 0 && (this.#tombstones.has(pathLower) || this.#hiddenByAncestor(pathLower, false));
    if (baseNode?.children && !baseHidden) {
      for (const child of baseNode.children) {
        if (this.size > 0 && (this.#writes.has(child) || this.#tombstones.has(child))) continue;
        out.push(base.get(child)!);
      }
    }
    const own = this.#byParent.get(pathLower);
    if (own) for (const child of own) out.push(this.#writes.get(child)!.node);
    return out;
  }

  /**
   * Drops the own file write at `pathLower` when the base already holds that very revision (the
   * feed is ordered, so the base cannot go back to an older one) and nothing above it hides the
   * base there. Returns true if it dropped it: what a reader sees is unchanged.
   */
  confirmFile(pathLower: string, base: Tree): boolean {
    const own = this.#writes.get(pathLower);
    if (!own || own.node.tag !== 'file' || own.node.rev === null) return false;
    const seen = base.get(pathLower);
    if (!seen || !sameEntry(seen, own.node)) return false; // tag, rev, size, hash, name, id
    if (this.#hiddenByAncestor(pathLower, false)) return false;
    this.#deleteWrite(pathLower);
    return true;
  }

  /** The paths of items installed before `chainStart` (what dropBefore would drop). */
  pathsBefore(chainStart: number): string[] {
    const out: string[] = [];
    for (const [p, w] of this.#writes) if (w.epoch < chainStart) out.push(p);
    for (const [p, epoch] of this.#tombstones) if (epoch < chainStart) out.push(p);
    return out;
  }

  /** Drops every item installed before `chainStart`; returns the paths whose visible state may change. */
  dropBefore(chainStart: number): string[] {
    const dropped: string[] = [];
    for (const [p, w] of this.#writes) if (w.epoch < chainStart) dropped.push(p);
    for (const p of dropped) this.#deleteWrite(p);
    for (const [p, epoch] of this.#tombstones) {
      if (epoch < chainStart) {
        this.#tombstones.delete(p);
        dropped.push(p);
      }
    }
    return dropped;
  }

  clear(): void {
    this.#writes.clear();
    this.#tombstones.clear();
    this.#byParent.clear();
  }

  /**
   * True if a tombstone on an ancestor (or on the path itself, when `self`) or an own file written
   * on an ancestor hides the base at `pathLower`.
   */
  #hiddenByAncestor(pathLower: string, self: boolean): boolean {
    if (self && this.#tombstones.has(pathLower)) return true;
    let q = pathLower;
    while (q !== '') {
      q = parentOf(q);
      if (this.#tombstones.has(q)) return true;
      const own = this.#writes.get(q);
      if (own && own.node.tag === 'file') return true;
    }
    return false;
  }

  #deleteWrite(pathLower: string): void {
    if (!this.#writes.delete(pathLower)) return;
    const parent = parentOf(pathLower);
    const set = this.#byParent.get(parent);
    set?.delete(pathLower);
    if (set?.size === 0) this.#byParent.delete(parent);
  }
}
