// `dropftp user add|list|remove|passwd`: edits the users file (src/users/users-file.ts). Main
// thread. Invariants: a password never appears in argv (stdin, or generated and printed once);
// every change is validated as the server would validate it before the file is replaced
// (atomically); a running server picks the change up at its next login (user-directory.ts).

import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { formatMount, parseMountSpec, toMountRecord, validAccountName } from '../users/mounts.ts';
import { hashPassword } from '../users/password.ts';
import { PERMISSIONS, isPermission, type Permission } from '../users/permissions.ts';
import { readUsersFile, resolveUser, validUserName, writeUsersFile, type UserRecord } from '../users/users-file.ts';

const USAGE = `usage: dropftp user add NAME [--password-stdin] [--root /folder] [--account A] [--read-only]
                         [--permissions list,read,write,delete,mkdir,rename] [--mount /here=account:/there[:ro]]...
       dropftp user passwd NAME [--password-stdin]
       dropftp user remove NAME
       dropftp user list [--json]
common: [--data-dir DIR] [--users FILE]

  --password-stdin   read the password from stdin (first line); otherwise one is generated and printed
  --root /folder     the user's '/' in its account (default /); the user can never leave it
  --account A        storage account (default local; a local box account is created on first use)
  --read-only        list and read only (same as --permissions list,read)
  --permissions P,…  what the user may do (default all: ${PERMISSIONS.join(',')})
  --mount SPEC       show folder /there of account A at /here in the user's tree (repeatable);
                     ":ro" makes it read-only; two users mounting one folder share it
  --data-dir DIR     data directory (default ./data); the users file is DIR/users.yaml
  --users FILE       users file (overrides --data-dir)
`;

class UsageError extends Error {}

interface Flags {
  passwordStdin: boolean;
  dataDir: string;
  usersFile?: string;
  root?: string;
  account?: string;
  readOnly: boolean;
  permissions?: Permission[];
  mounts: string[];
  json: boolean;
}

function parseFlags(action: string, rest: string[]): Flags {
  const allowed: Record<string, string[]> = {
    add: ['--password-stdin', '--root', '--account', '--read-only', '--permissions', '--mount'],
    passwd: ['--password-stdin'],
    remove: [],
    list: ['--json'],
  };
  const flags: Flags = { passwordStdin: false, dataDir: './data', readOnly: false, mounts: [], json: false };
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i]!;
    const value = (): string => {
      const v = rest[++i];
      if (v === undefined || v === '') throw new UsageError(`${flag} needs a value`);
      return v;
    };
    if (!['--data-dir', '--users', ...(allowed[action] ?? [])].includes(flag)) throw new UsageError(`unknown option ${flag} for "user ${action}"`);
    if (flag === '--password-stdin') flags.passwordStdin = true;
    else if (flag === '--data-dir') flags.dataDir = value();
    else if (flag === '--users') flags.usersFile = value();
    else if (flag === '--root') flags.root = value();
    else if (flag === '--account') flags.account = value();
    else if (flag === '--read-only') flags.readOnly = true;
    else if (flag === '--json') flags.json = true;
    else if (flag === '--mount') flags.mounts.push(value());
    else if (flag === '--permissions') {
      const list = value().split(',').map((p) => p.trim()).filter(Boolean);
      for (const p of list) if (!isPermission(p)) throw new UsageError(`--permissions: unknown permission "${p}" (${PERMISSIONS.join(', ')})`);
      flags.permissions = list as Permission[];
    }
  }
  return flags;
}

async function readStdinLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

async function newPassword(flags: Flags): Promise<{ password: string; generated: boolean }> {
  if (!flags.passwordStdin) return { password: randomBytes(12).toString('base64url'), generated: true };
  const password = await readStdinLine();
  if (password.length === 0) throw new UsageError('empty password on stdin');
  return { password, generated: false };
}

function describe(name: string, record: UserRecord): Record<string, unknown> {
  const user = resolveUser(name, record);
  return {
    name,
    account: user.account,
    root: user.root || '/',
    permissions: PERMISSIONS.filter((p) => user.permissions.has(p)),
    mounts: user.mounts.map(formatMount),
  };
}

export async function userCommand(argv: string[]): Promise<number> {
  const [action = '', ...afterAction] = argv;
  const needsName = action === 'add' || action === 'passwd' || action === 'remove';
  const name = needsName ? afterAction[0] : undefined;
  try {
    if (!['add', 'passwd', 'remove', 'list'].includes(action)) throw new UsageError(action ? `unknown action "${action}"` : '');
    if (needsName && (!name || name.startsWith('-'))) throw new UsageError(`user ${action} needs a NAME`);
    if (name !== undefined && !validUserName(name)) throw new UsageError(`bad name "${name}" (letters, digits, . _ @ -; at most 64)`);
    const flags = parseFlags(action, needsName ? afterAction.slice(1) : afterAction);
    const path = resolve(flags.usersFile ?? join(flags.dataDir, 'users.yaml'));
    const file = await readUsersFile(path);
    const exists = name !== undefined && Object.hasOwn(file.users, name);

    if (action === 'list') {
      const rows = Object.entries(file.users).map(([n, r]) => describe(n, r));
      if (flags.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
      else {
        for (const row of rows) {
          const mounts = (row.mounts as string[]).length ? `  mounts: ${(row.mounts as string[]).join(' ')}` : '';
          process.stdout.write(`${row.name}  account=${row.account}  root=${row.root}  permissions=${(row.permissions as string[]).join(',')}${mounts}\n`);
        }
        if (rows.length === 0) process.stdout.write(`(no users in ${path})\n`);
      }
      return 0;
    }
    if (action === 'remove') {
      if (!exists) return fail(`user "${name}" does not exist in ${path}`);
      delete file.users[name!];
      await writeUsersFile(path, file);
      process.stdout.write(`dropftp: removed user "${name}" from ${path}\n`);
      return 0;
    }
    if (action === 'passwd') {
      if (!exists) return fail(`user "${name}" does not exist in ${path} (add it with \`dropftp user add ${name}\`)`);
      const { password, generated } = await newPassword(flags);
      file.users[name!]!.password = await hashPassword(password);
      await writeUsersFile(path, file);
      process.stdout.write(`dropftp: changed the password of "${name}" in ${path}\n`);
      if (generated) process.stdout.write(`dropftp: password: ${password}\n`);
      return 0;
    }
    // add
    if (exists) return fail(`user "${name}" already exists in ${path} (change its password with \`dropftp user passwd ${name}\`)`);
    if (flags.account !== undefined && !validAccountName(flags.account)) throw new UsageError(`--account: bad account name "${flags.account}"`);
    if (flags.root !== undefined && !flags.root.startsWith('/')) throw new UsageError('--root: must be an absolute folder, e.g. /alice');
    const mounts = flags.mounts.map((spec) => toMountRecord(parseMountSpec(spec)));
    const { password, generated } = await newPassword(flags);
    const record: UserRecord = { password: await hashPassword(password), account: flags.account ?? 'local', root: flags.root ?? '/' };
    if (flags.readOnly) record['read-only'] = true;
    if (flags.permissions) record.permissions = flags.permissions;
    if (mounts.length) record.mounts = mounts;
    resolveUser(name!, record, path); // exactly what the server will accept (throws naming the option)
    file.users[name!] = record;
    await writeUsersFile(path, file);
    process.stdout.write(`dropftp: added user "${name}" in ${path}\n`);
    if (generated) process.stdout.write(`dropftp: password: ${password}\n`);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write((err.message ? `dropftp user: ${err.message}\n` : '') + USAGE);
      return 2;
    }
    if ((err as { code?: string }).code === 'DROPFTP_ERR_CONFIG') return fail((err as Error).message);
    throw err;
  }
}

function fail(message: string): number {
  process.stderr.write(`dropftp user: ${message}\n`);
  return 1;
}
