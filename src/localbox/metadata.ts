// Entry rows and their JSON form (Metadata / FileMetadata / FolderMetadata / DeletedMetadata, reference
// §3.8). Runs in the local box child. Invariants: timestamps are second-precision "…Z";
// is_downloadable is always true on files; `.tag` is present when the declared type is Metadata.

export interface EntryRow {
  ns: number;
  path_lower: string;
  parent_lower: string;
  path_display: string;
  name: string;
  tag: 'file' | 'folder';
  id: string;
  rev: string | null;
  size: number | null;
  content_hash: string | null;
  client_modified: string | null;
  server_modified: string | null;
}

/** Now as a DropboxTimestamp (UTC, whole seconds, literal Z). */
export function timestamp(ms = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

export function metadataJson(row: EntryRow, withTag = true): Record<string, unknown> {
  const common = { name: row.name, path_lower: row.path_lower, path_display: row.path_display, id: row.id };
  if (row.tag === 'folder') return withTag ? { '.tag': 'folder', ...common } : common;
  const file = {
    ...common,
    client_modified: row.client_modified,
    server_modified: row.server_modified,
    rev: row.rev,
    size: row.size,
    is_downloadable: true,
    content_hash: row.content_hash,
  };
  return withTag ? { '.tag': 'file', ...file } : file;
}

export function deletedJson(row: Pick<EntryRow, 'name' | 'path_lower' | 'path_display'>): Record<string, unknown> {
  return { '.tag': 'deleted', name: row.name, path_lower: row.path_lower, path_display: row.path_display };
}

/** JSON for an HTTP header: every code unit ≥ 0x7F escaped as \uXXXX (reference §1.3). */
export function headerSafeJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
