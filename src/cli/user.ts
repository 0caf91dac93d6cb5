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
import { UsageError as ArgsUsageError, flagLines, parseCommand, type FlagTable } from './args.ts';

const COMMON = {
  'data-dir': { type: 'string', valueName: 'DIR', doc: 'data directory (default ./data); the users file is DIR/users.yaml' },
  users: { type: 'string', valueName: 'FILE', doc: 'users file (overrides --data-dir)' },
} as const satisfies FlagTable;
const PASSWORD = { 'password-stdin': { type: 'boolean', doc: 'read the password from stdin (first line); otherwise one is generated and printed' } } as const satisfies FlagTable;
const ADD = {
  ...PASSWORD,
  root: { type: 'string', valueName: '/folder', doc: "the user's '/' in its account (default /); the user can never leave it" },
  account: { type: 'string', valueName: 'A', doc: 'storage account (default local; a local box account is created on first use)' },
  'read-only': { type: 'boolean', doc: 'list and read only (same as --permissions list,read)' },
  permissions: { type: 'string', valueName: 'P,…', doc: `what the user may do (default all: ${PERMISSIONS.join(',')})` },
  mount: {
    type: 'string',
    multiple: true,
    valueName: 'SPEC',
    doc: 'show folder /there of account A at /here (/here=A:/there[:ro]); repeatable; two users mounting one folder share it',
  },
} as const satisfies FlagTable;
const ACTIONS: Record<string, FlagTable> = { add: { ...ADD, ...COMMON }, passwd: { ...PASSWORD, ...COMMON }, remove: COMMON, list: { json: { type: 'boolean', doc: 'JSON output' }, ...COMMON } };

const USAGE = `usage: dropftp user add NAME [--password-stdin] [--root /folder] [--account A] [--read-only]
                         [--permissions list,read,write,delete,mkdir,rename] [--mount /here=account:/there[:ro]]...
       dropftp user passwd NAME [--password-stdin]
       dropftp user remove NAME
       dropftp user list [--json]
common: [--data-dir DIR] [--users FILE]

${flagLines({ ...ADD, json: ACTIONS.list!.json!, ...COMMON })}`;

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
  let parsed: ReturnType<typeof parseCommand>;
  try {
    parsed = parseCommand(rest, ACTIONS[action] ?? COMMON);
  } catch (err) {
    if (err instanceof ArgsUsageError) throw new UsageError(`${err.message} for "user ${action}"`);
    throw err;
  }
  const v = parsed.values as Record<string, string | boolean | string[] | undefined>;
  for (const [name, value] of Object.entries(v)) if (value === '') throw new UsageError(`--${name} needs a value`);
  const flags: Flags = {
    passwordStdin: v['password-stdin'] === true,
    dataDir: (v['data-dir'] as string | undefined) ?? './data',
    readOnly: v['read-only'] === true,
    mounts: (v.mount as string[] | undefined) ?? [],
    json: v.json === true,
  };
  if (typeof v.users === 'string') flags.usersFile = v.users;
  if (typeof v.root === 'string') flags.root = v.root;
  if (typeof v.account === 'string') flags.account = v.account;
  if (typeof v.permissions === 'string') {
    const list = v.permissions.split(',').map((p) => p.trim()).filter(Boolean);
    for (const p of list) if (!isPermission(p)) throw new UsageError(`--permissions: unknown permission "${p}" (${PERMISSIONS.join(', ')})`);
    flags.permissions = list as Permission[];
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
  if (['help', '--help', '-h'].includes(action) || afterAction.includes('--help') || afterAction.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
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
