// What the directory cache stores per path: the fields the FTP layer lists and stats, decoded once
// from Dropbox Metadata JSON, plus path helpers. Main thread. Invariants: keys are path_lower
// ("" = the root, never "/"); names keep their case; an entry object is never mutated once
// published (a change replaces it), except a folder's `children` set of child path_lower keys.

export interface CacheEntry {
  readonly tag: 'file' | 'folder';
  /** Last path component, in its real case. */
  readonly name: string;
  readonly pathLower: string;
  readonly id: string;
  /** Bytes; 0 for folders. */
  readonly size: number;
  readonly clientModifiedMs: number | null;
  readonly serverModifiedMs: number | null;
  readonly rev: string | null;
  readonly contentHash: string | null;
}

/** A stored entry: folders carry the path_lower keys of their children. */
export interface Node extends CacheEntry {
  readonly children: Set<string> | null;
}

/** Dropbox Metadata as it comes in list_folder / continue / get_metadata / upload results. */
export interface RawMetadata {
  '.tag'?: string;
  name: string;
  path_lower?: string | null;
  path_display?: string | null;
  id?: string;
  size?: number;
  client_modified?: string;
  server_modified?: string;
  rev?: string;
  content_hash?: string;
}

/** The cache key of a path: lower case, no trailing slash, "" for the root. */
export function normalizePath(path: string): string {
  const lower = path.toLowerCase().replace(/\/+$/, '');
  return lower === '' || lower.startsWith('/') ? lower : `/${lower}`;
}

export function parentOf(pathLower: string): string {
  return pathLower.slice(0, Math.max(0, pathLower.lastIndexOf('/')));
}

/** True when `pathLower` is `prefix` or lies below it ("" contains everything). */
export function within(pathLower: string, prefix: string): boolean {
  return prefix === '' || pathLower === prefix || (pathLower.startsWith(prefix) && pathLower.charCodeAt(prefix.length) === 47);
}

function timeMs(value: string | undefined): number | null {
  if (!value) return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

export function rootNode(): Node {
  return folderNode('', '', '', new Set());
}

export function folderNode(pathLower: string, name: string, id: string, children: Set<string>): Node {
  return { tag: 'folder', name, pathLower, id, size: 0, clientModifiedMs: null, serverModifiedMs: null, rev: null, contentHash: null, children };
}

/** The path_lower a metadata record is about ("" if it has none, e.g. an unmounted item). */
export function pathOf(raw: RawMetadata): string {
  if (typeof raw.path_lower === 'string') return raw.path_lower;
  return typeof raw.path_display === 'string' ? normalizePath(raw.path_display) : '';
}

/** A node from file/folder metadata; null for `deleted` (and unknown tags). */
export function nodeFrom(raw: RawMetadata, children: Set<string> | null = null): Node | null {
  const tag = raw['.tag'] ?? (raw.rev !== undefined ? 'file' : 'folder');
  const pathLower = pathOf(raw);
  if (tag === 'folder') return folderNode(pathLower, raw.name, raw.id ?? '', children ?? new Set());
  if (tag !== 'file') return null;
  return {
    tag: 'file',
    name: raw.name,
    pathLower,
    id: raw.id ?? '',
    size: Number(raw.size ?? 0),
    clientModifiedMs: timeMs(raw.client_modified),
    serverModifiedMs: timeMs(raw.server_modified),
    rev: raw.rev ?? null,
    contentHash: raw.content_hash ?? null,
    children: null,
  };
}

/** Same visible state (used to avoid announcing a change that changed nothing). */
export function sameEntry(a: CacheEntry | null, b: CacheEntry | null): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  return a.tag === b.tag && a.name === b.name && a.id === b.id && a.rev === b.rev && a.size === b.size && a.contentHash === b.contentHash;
}
