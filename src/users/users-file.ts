// The users file (YAML): FTP users with scrypt password hashes, the storage account each uses and
// its root folder. Main thread. Invariants: read and validated once at start (errors name the
// option); written atomically (temp file + rename, mode 0600); unknown fields are kept as they are,
// so the fuller users issue can extend the format. Minimal for now: users issue 6 completes it.

import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parse, stringify } from 'yaml';
import { DropftpError } from '../errors.ts';

export interface UserRecord {
  /** "scrypt$N$r$p$salt$hash" */
  password: string;
  /** Storage account name (the local box account, by default 'local'). */
  account: string;
  /** Dropbox folder that is the user's '/'. */
  root: string;
  /** Verbs refused to this user (e.g. STOR, DELE for a read-only user). */
  deny?: string[];
}

export interface UsersFile {
  users: Record<string, UserRecord>;
}

const NAME = /^[A-Za-z0-9._@-]{1,64}$/;

export function validUserName(name: string): boolean {
  return NAME.test(name);
}

export async function readUsersFile(path: string): Promise<UsersFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { users: {} };
    throw new DropftpError('DROPFTP_ERR_CONFIG', `users file ${path}: ${(err as Error).message}`);
  }
  const doc = (parse(text) ?? {}) as { users?: unknown };
  const users = doc.users ?? {};
  if (typeof users !== 'object' || Array.isArray(users)) throw new DropftpError('DROPFTP_ERR_CONFIG', `users file ${path}: "users" must be a map`);
  for (const [name, record] of Object.entries(users as Record<string, unknown>)) {
    const r = record as Partial<UserRecord>;
    if (!validUserName(name)) throw new DropftpError('DROPFTP_ERR_CONFIG', `users file ${path}: bad user name "${name}"`);
    if (typeof r?.password !== 'string' || !r.password.startsWith('scrypt$')) throw new DropftpError('DROPFTP_ERR_CONFIG', `users file ${path}: users.${name}.password must be a scrypt hash`);
    r.account ??= 'local';
    r.root ??= '/';
  }
  return { ...(doc as object), users: users as Record<string, UserRecord> };
}

export async function writeUsersFile(path: string, file: UsersFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const header = '# dropftp users: name → scrypt password hash, storage account, root folder.\n# Edit with `dropftp user add NAME`.\n';
  await writeFile(temporary, header + stringify(file), { mode: 0o600 });
  await rename(temporary, path);
}
