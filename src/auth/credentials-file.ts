// The credentials file (YAML, default <dataDir>/credentials.yaml): one entry per Dropbox account
// with its app key, refresh token and base URLs. Main thread. Invariants: only refresh tokens are
// stored (access tokens live in memory); the file is written atomically (temp file created with
// mode 0600, then renamed) and refused when group or others can read it, as ssh refuses keys.

import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parse, stringify } from 'yaml';
import { DropftpError } from '../errors.ts';

export const DROPBOX_API_URL = 'https://api.dropboxapi.com';
export const DROPBOX_CONTENT_URL = 'https://content.dropboxapi.com';

export interface AccountCredentials {
  /** OAuth app key (client_id). */
  appKey: string;
  /** Only for confidential apps; PKCE apps have none. */
  appSecret?: string;
  refreshToken: string;
  /** RPC host; default https://api.dropboxapi.com (the local box: its URL). */
  apiUrl: string;
  /** Content host; default https://content.dropboxapi.com (the local box: its URL). */
  contentUrl: string;
  /** From users/get_current_account at `dropftp auth` time (informational). */
  accountId?: string;
  email?: string;
}

export interface CredentialsFile {
  accounts: Record<string, AccountCredentials>;
}

const NAME = /^[A-Za-z0-9._@-]{1,64}$/;

export function validAccountName(name: string): boolean {
  return NAME.test(name);
}

function bad(path: string, message: string): DropftpError {
  return new DropftpError('DROPFTP_ERR_CONFIG', `credentials file ${path}: ${message}`);
}

/** Reads and validates the file; a missing file is an empty one. */
export async function readCredentialsFile(path: string): Promise<CredentialsFile> {
  let text: string;
  try {
    const info = await stat(path);
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      throw bad(path, `mode ${(info.mode & 0o777).toString(8)} lets others read refresh tokens; run chmod 600 ${path}`);
    }
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof DropftpError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { accounts: {} };
    throw bad(path, (err as Error).message);
  }
  let doc: unknown;
  try {
    doc = parse(text) ?? {};
  } catch (err) {
    throw bad(path, (err as Error).message);
  }
  const accounts = (doc as { accounts?: unknown }).accounts ?? {};
  if (typeof accounts !== 'object' || accounts === null || Array.isArray(accounts)) throw bad(path, '"accounts" must be a map');
  const out: Record<string, AccountCredentials> = {};
  for (const [name, raw] of Object.entries(accounts as Record<string, unknown>)) {
    if (!validAccountName(name)) throw bad(path, `bad account name "${name}"`);
    const r = (raw ?? {}) as Record<string, unknown>;
    const str = (key: string, required: boolean): string | undefined => {
      const v = r[key];
      if (v === undefined && !required) return undefined;
      if (typeof v !== 'string' || v === '') throw bad(path, `accounts.${name}.${key} must be a non-empty string`);
      return v;
    };
    const url = (key: string, fallback: string): string => {
      const v = str(key, false) ?? fallback;
      if (!/^https?:\/\/[^/]+/.test(v)) throw bad(path, `accounts.${name}.${key} must be an http(s) URL`);
      return v.replace(/\/+$/, '');
    };
    const entry: AccountCredentials = {
      appKey: str('appKey', true)!,
      refreshToken: str('refreshToken', true)!,
      apiUrl: url('apiUrl', DROPBOX_API_URL),
      contentUrl: url('contentUrl', DROPBOX_CONTENT_URL),
    };
    const optional = ['appSecret', 'accountId', 'email'] as const;
    for (const key of optional) {
      const v = str(key, false);
      if (v !== undefined) entry[key] = v;
    }
    out[name] = entry;
  }
  return { accounts: out };
}

/** Replaces the file atomically; the new file is 0600 from its creation on. */
export async function writeCredentialsFile(path: string, file: CredentialsFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const header = '# dropftp Dropbox accounts: refresh tokens (keep private, mode 0600). Add with `dropftp auth`.\n';
  try {
    // 'wx': never follow or reuse an existing file; mode applies at creation (umask can only remove bits).
    await writeFile(temporary, header + stringify(file), { mode: 0o600, flag: 'wx' });
    await chmod(temporary, 0o600);
    await rename(temporary, path);
  } catch (err) {
    await unlink(temporary).catch(() => {});
    throw bad(path, (err as Error).message);
  }
}

/** Adds or replaces one account, keeping the others. */
export async function saveAccount(path: string, name: string, account: AccountCredentials): Promise<void> {
  const file = await readCredentialsFile(path);
  file.accounts[name] = account;
  await writeCredentialsFile(path, file);
}
