// The base tree of one account: exactly what the change feed has said so far, applied in cursor
// order. Main thread. Invariants: every node's parent exists and is a folder whose `children`
// holds it; a file never has children; `deleted` removes a path and everything below it; an
// entry whose parent is unknown creates the missing folders (Dropbox does not promise parents
// first). O(1) per change except subtree removal (O(subtree)).

import { folderNode, nodeFrom, parentOf, pathOf, rootNode, type Node, type RawMetadata } from './entry.ts';

/** One visible consequence of applying a change: the path and its new node (null = removed). */
export interface TreeChange {
  pathLower: string;
  node: Node | null;
}

export class Tree {
  readonly #nodes = new Map<string, Node>([['', rootNode()]]);

  /** Entries, the root excluded. */
  get size(): number {
    return this.#nodes.size - 1;
  }

  get(pathLower: string): Node | undefined {
    return this.#nodes.get(pathLower);
  }

  /** Applies one list_folder / continue entry; appends what changed to `out`. */
  apply(raw: RawMetadata, out: TreeChange[] = []): TreeChange[] {
    const pathLower = pathOf(raw);
    if (pathLower === '') return out; // the root itself, or an item with no path
    if (raw['.tag'] === 'deleted') {
      if (this.remove(pathLower)) out.push({ pathLower, node: null });
      return out;
    }
    const existing = this.#nodes.get(pathLower);
    if (existing?.tag === 'folder' && raw['.tag'] === 'folder') {
      const node = nodeFrom(raw, existing.children)!;
      this.#nodes.set(pathLower, node);
      if (existing.name !== node.name || existing.id !== node.id) out.push({ pathLower, node });
      return out;
    }
    const node = nodeFrom(raw);
    if (!node) return out;
    if (existing) this.remove(pathLower); // file ↔ folder: the old one and its subtree go
    this.#ensureParent(pathLower, raw.path_display ?? null, out);
    this.#nodes.set(pathLower, node);
    this.#nodes.get(parentOf(pathLower))!.children!.add(pathLower);
    out.push({ pathLower, node });
    return out;
  }

  /** Removes a path and its subtree; false if it was not there. */
  remove(pathLower: string): boolean {
    const node = this.#nodes.get(pathLower);
    if (!node || pathLower === '') return false;
    this.#nodes.get(parentOf(pathLower))?.children?.delete(pathLower);
    const stack: Node[] = [node];
    while (stack.length > 0) {
      const n = stack.pop()!;
      this.#nodes.delete(n.pathLower);
      if (n.children) for (const child of n.children) stack.push(this.#nodes.get(child)!);
    }
    return true;
  }

  /** Creates missing ancestor folders (named from the display path) of `pathLower`. */
  #ensureParent(pathLower: string, pathDisplay: string | null, out: TreeChange[]): void {
    const parent = parentOf(pathLower);
    const existing = this.#nodes.get(parent);
    if (existing?.tag === 'folder') return;
    if (existing) this.remove(parent);
    const displayParent = pathDisplay && pathDisplay.length === pathLower.length ? parentOf(pathDisplay) : parent;
    this.#ensureParent(parent, displayParent, out);
    const name = displayParent.slice(displayParent.lastIndexOf('/') + 1);
    const node = folderNode(parent, name, '', new Set());
    this.#nodes.set(parent, node);
    this.#nodes.get(parentOf(parent))!.children!.add(parent);
    out.push({ pathLower: parent, node });
  }
}
