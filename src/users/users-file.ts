// The users file (YAML): virtual FTP users with scrypt password hashes, the storage account each
// uses, its root folder (a jail), its permissions and its extra mounts. Main thread. Invariants:
// validated whole on every read (errors name the user and the option); written atomically (temp
// file + rename, mode 0600); an unknown field, in a user or beside `users`, is an error naming it (a
// misspelt `permisions:` or `readonly:` silently left the user every right); a user without
// `permissions` or `read-only` may do everything inside its tree.
//
//   users:
//     alice:
//       password: scrypt$16384$8$1$<salt>$<hash>
//       account: local            # storage account (accounts.yaml); default 'local'
//       root: /alice              # the user's '/'; default '/'
//       read-only: false          # shorthand for permissions: [list, read]
//       permissions: [list, read, write, delete, mkdir, rename]
//       mounts:
//         - /shared=bob:/projects:ro          # or { path, account, folder, read-only }

import { randomBytes } from 'node:crypto';
import { unknownKey } from '../config/file.ts';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parse, stringify } from 'yaml';
import { DropftpError } from '../errors.ts';
import { normalizeRoot } from '../ftp/fs/paths.ts';
import { passwordHashProblem } from './password.ts';
import { checkMount, checkMountSet, validAccountName, type Mount, type MountRecord } from './mounts.ts';
import { ALL_PERMISSIONS, READ_ONLY_PERMISSIONS, isPermission, type Permission, type PermissionSet } from './permissions.ts';

export interface UserRecord {
  /** "scrypt$N$r$p$salt$hash" */
  password: string;
  /** Storage account name (the local box account, by default 'local'). */
  account: string;
  /** Dropbox folder that is the user's '/'. */
  root: string;
  'read-only'?: boolean;
  permissions?: Permission[];
  mounts?: (string | MountRecord)[];
  /** Extra verbs refused to this user (e.g. SITE), on top of what permissions refuse. */
  deny?: string[];
}

export interface UsersFile {
  users: Record<string, UserRecord>;
}

/** One user, validated and resolved: what login and the file system use. */
export interface UserConfig {
  name: string;
  passwordHash: string;
  account: string;
  /** '' or '/folder' (normalised). */
  root: string;
  permissions: PermissionSet;
  mounts: readonly Mount[];
  deny: readonly string[];
}

const NAME = /^[A-Za-z0-9._@-]{1,64}$/;

export function validUserName(name: string): boolean {
  return NAME.test(name);
}

function bad(path: string, what: string): DropftpError {
  return new DropftpError('DROPFTP_ERR_CONFIG', `users file ${path}: ${what}`);
}

/** The fields of a user record (UserRecord). */
const USER_KEYS: readonly string[] = ['password', 'account', 'root', 'read-only', 'permissions', 'mounts', 'deny'];
/** The fields of the file itself. */
const FILE_KEYS: readonly string[] = ['users'];

/** Throws DROPFTP_ERR_CONFIG naming the first field of `map` not in `known` (`prefix` + field) and the nearest known one. */
function refuseUnknown(map: object, known: readonly string[], prefix: string, file: string): void {
  const key = Object.keys(map).find((k) => !known.includes(k));
  if (key !== undefined) throw bad(file, `${prefix}${key}: ${unknownKey(key, known).replace('option', 'field')}`);
}

/** Validates one record; throws DROPFTP_ERR_CONFIG naming `users.NAME.option`. */
export function resolveUser(name: string, record: unknown, file = 'users file'): UserConfig {
  const where = `users.${name}`;
  const r = record as Partial<UserRecord> | null;
  if (!validUserName(name)) throw bad(file, `bad user name "${name}" (letters, digits, . _ @ -; at most 64)`);
  if (!r || typeof r !== 'object' || Array.isArray(r)) throw bad(file, `${where} must be a map`);
  refuseUnknown(r, USER_KEYS, `${where}.`, file);
  if (typeof r.password !== 'string' || !r.password.startsWith('scrypt$')) throw bad(file, `${where}.password must be a scrypt hash`);
  const hashProblem = passwordHashProblem(r.password);
  if (hashProblem) throw bad(file, `${where}.password: ${hashProblem}`);
  const account = r.account ?? 'local';
  if (typeof account !== 'string' || !validAccountName(account)) throw bad(file, `${where}.account: bad account name "${String(account)}"`);
  if (r.root !== undefined && (typeof r.root !== 'string' || !r.root.startsWith('/'))) throw bad(file, `${where}.root must be an absolute folder`);
  let root: string;
  try {
    root = normalizeRoot(r.root ?? '/');
  } catch (err) {
    throw bad(file, `${where}.root: ${(err as Error).message}`);
  }
  if (r['read-only'] !== undefined && typeof r['read-only'] !== 'boolean') throw bad(file, `${where}.read-only must be true or false`);
  let permissions: PermissionSet = ALL_PERMISSIONS;
  if (r.permissions !== undefined) {
    if (!Array.isArray(r.permissions)) throw bad(file, `${where}.permissions must be a list`);
    for (const p of r.permissions) if (!isPermission(p)) throw bad(file, `${where}.permissions: unknown permission "${String(p)}" (list, read, write, delete, mkdir, rename)`);
    permissions = new Set(r.permissions);
  }
  if (r['read-only'] === true) permissions = new Set([...permissions].filter((p) => READ_ONLY_PERMISSIONS.has(p)));
  if (r.mounts !== undefined && !Array.isArray(r.mounts)) throw bad(file, `${where}.mounts must be a list`);
  const mounts = (r.mounts ?? []).map((m, i) => {
    try {
      return checkMount(m, `${where}.mounts[${i}]`);
    } catch (err) {
      throw bad(file, (err as Error).message);
    }
  });
  try {
    checkMountSet(mounts, `${where}.mounts`);
  } catch (err) {
    throw bad(file, (err as Error).message);
  }
  if (r.deny !== undefined && (!Array.isArray(r.deny) || r.deny.some((v) => typeof v !== 'string'))) throw bad(file, `${where}.deny must be a list of verbs`);
  return { name, passwordHash: r.password, account, root, permissions, mounts, deny: (r.deny ?? []).map((v) => v.toUpperCase()) };
}

export function parseUsersFile(text: string, path = 'users file'): UsersFile {
  let doc: { users?: unknown };
  try {
    doc = (parse(text) ?? {}) as { users?: unknown };
  } catch (err) {
    throw bad(path, `not valid YAML: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || Array.isArray(doc)) throw bad(path, 'expected a map with "users"');
  refuseUnknown(doc, FILE_KEYS, '', path);
  const users = doc.users ?? {};
  if (typeof users !== 'object' || Array.isArray(users) || users === null) throw bad(path, '"users" must be a map');
  for (const [name, record] of Object.entries(users as Record<string, unknown>)) {
    resolveUser(name, record, path);
    const r = record as UserRecord;
    r.account ??= 'local';
    r.root ??= '/';
  }
  return { ...(doc as object), users: users as Record<string, UserRecord> };
}

export async function readUsersFile(path: string): Promise<UsersFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { users: {} };
    throw bad(path, (err as Error).message);
  }
  return parseUsersFile(text, path);
}

export async function writeUsersFile(path: string, file: UsersFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const header =
    '# dropftp users: name → scrypt password hash, storage account, root folder, permissions, mounts.\n' +
    '# Edit with `dropftp user add|remove|passwd|list` (a running server picks changes up at the next login).\n';
  await writeFile(temporary, header + stringify(file), { mode: 0o600 });
  await rename(temporary, path);
}
