// `dropftp user add NAME [--password-stdin] [--data-dir DIR] [--users FILE] [--root PATH]`: writes
// a scrypt hash into the users file. Main thread. Invariants: the password never appears in argv
// (stdin or generated); a generated password is printed once; the file is replaced atomically.

import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { hashPassword } from '../users/password.ts';
import { readUsersFile, validUserName, writeUsersFile } from '../users/users-file.ts';

const USAGE = `usage: dropftp user add NAME [--password-stdin] [--data-dir DIR] [--users FILE] [--root PATH]

  --password-stdin   read the password from stdin (first line); otherwise one is generated and printed
  --data-dir DIR     data directory (default ./data); the users file is DIR/users.yaml
  --users FILE       users file (overrides --data-dir)
  --root PATH        the user's root folder in storage (default /)
`;

async function readStdinLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

export async function userCommand(argv: string[]): Promise<number> {
  const [action, name, ...rest] = argv;
  if (action !== 'add' || !name || name.startsWith('-')) {
    process.stderr.write(USAGE);
    return 2;
  }
  if (!validUserName(name)) {
    process.stderr.write(`dropftp user add: bad name "${name}" (letters, digits, . _ @ -; at most 64)\n`);
    return 2;
  }
  let passwordStdin = false;
  let dataDir = './data';
  let usersFile: string | undefined;
  let root = '/';
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i];
    const value = (): string | undefined => rest[++i];
    if (flag === '--password-stdin') passwordStdin = true;
    else if (flag === '--data-dir') dataDir = value() ?? '';
    else if (flag === '--users') usersFile = value();
    else if (flag === '--root') root = value() ?? '';
    else {
      process.stderr.write(`dropftp user add: unknown option ${flag}\n${USAGE}`);
      return 2;
    }
    if (dataDir === '' || usersFile === '' || root === '') {
      process.stderr.write(`dropftp user add: ${flag} needs a value\n`);
      return 2;
    }
  }
  const path = resolve(usersFile ?? join(dataDir, 'users.yaml'));
  const password = passwordStdin ? await readStdinLine() : randomBytes(12).toString('base64url');
  if (password.length === 0) {
    process.stderr.write('dropftp user add: empty password\n');
    return 2;
  }
  const file = await readUsersFile(path);
  const existed = Object.hasOwn(file.users, name);
  file.users[name] = { ...(existed ? file.users[name] : {}), password: await hashPassword(password), account: file.users[name]?.account ?? 'local', root: existed ? file.users[name]!.root : root };
  await writeUsersFile(path, file);
  process.stdout.write(`dropftp: ${existed ? 'updated' : 'added'} user "${name}" in ${path}\n`);
  if (!passwordStdin) process.stdout.write(`dropftp: password: ${password}\n`);
  return 0;
}
