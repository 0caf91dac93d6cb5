// `dropftp user add|list|passwd|remove` run as child processes (bin/dropftp.mjs) against the users
// file of a running service: each change takes effect at the next FTP login, with no restart.

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RawFtp, download, upload } from '../ftp/helpers/raw-client.ts';
import { readFileText, startUsersStack, type UsersStack } from './helpers.ts';

const BIN = fileURLToPath(new URL('../../bin/dropftp.mjs', import.meta.url));
let stack: UsersStack;

test.before(async () => {
  stack = await startUsersStack({ admin: { password: 'admin-pw', root: '/admin' } });
});

test.after(async () => {
  await stack.stop();
});

function cli(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, 'user', ...args, '--users', stack.usersFile], (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    child.stdin!.end(stdin ?? '');
  });
}

/** Logs in; retries for up to 3 s while the server has not re-read the users file yet. */
async function loginResult(user: string, password: string, want: number): Promise<{ code: number; client: RawFtp }> {
  const started = Date.now();
  for (;;) {
    const c = await RawFtp.connect(stack.port);
    await c.cmd(`USER ${user}`);
    const reply = await c.cmd(`PASS ${password}`);
    if (reply.code === want || Date.now() - started > 3000) return { code: reply.code, client: c };
    c.close();
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('user add with root, account, read-only and a mount; the running server logs the user in', async () => {
  const added = await cli(['add', 'dave', '--password-stdin', '--root', '/dave', '--read-only', '--mount', '/team=team:/proj:ro'], 'dave-pw\n');
  assert.is(added.code, 0, added.stderr);
  assert.match(added.stdout, /added user "dave"/);
  assert.not.match(added.stdout, /dave-pw/, 'a stdin password is never printed');
  const { code, client } = await loginResult('dave', 'dave-pw', 230);
  assert.is(code, 230);
  assert.equal((await download(client, 'NLST /')).data.toString().split('\r\n').filter(Boolean), ['team']);
  assert.ok([550, 553].includes((await upload(client, 'STOR /x.txt', Buffer.from('x'))).first.code), 'read-only');
  client.close();

  const generated = await cli(['add', 'erin', '--permissions', 'list,read,write', '--account', 'team']);
  assert.is(generated.code, 0, generated.stderr);
  const password = /password: (\S+)/.exec(generated.stdout)?.[1];
  assert.ok(password, 'a generated password is printed once');
  const erin = await loginResult('erin', password!, 230);
  assert.is(erin.code, 230);
  assert.is((await upload(erin.client, 'STOR /proj/e.txt', Buffer.from('erin'))).final.code, 226);
  assert.is((await erin.client.cmd('DELE /proj/e.txt')).code, 550, 'no delete permission');
  erin.client.close();
  assert.is(await readFileText(await stack.sdk('team'), '/proj/e.txt'), 'erin', 'erin writes into the team account');
});

test('user list shows what the server will do; --json is machine-readable', async () => {
  const text = await cli(['list']);
  assert.is(text.code, 0);
  assert.match(text.stdout, /^dave +account=local +root=\/dave +permissions=list,read +mounts: \/team=team:\/proj:ro$/m);
  const json = JSON.parse((await cli(['list', '--json'])).stdout) as { name: string; account: string; permissions: string[] }[];
  assert.equal(json.map((u) => u.name).sort(), ['admin', 'dave', 'erin']);
  assert.equal(json.find((u) => u.name === 'erin')?.permissions, ['list', 'read', 'write']);
  assert.is(json.find((u) => u.name === 'erin')?.account, 'team');
});

test('user passwd: the old password stops working, the new one works', async () => {
  const changed = await cli(['passwd', 'dave', '--password-stdin'], 'new-dave-pw\n');
  assert.is(changed.code, 0, changed.stderr);
  assert.is((await loginResult('dave', 'dave-pw', 530)).code, 530, 'old password refused (the login cache is keyed by the hash)');
  const fresh = await loginResult('dave', 'new-dave-pw', 230);
  assert.is(fresh.code, 230);
  fresh.client.close();
});

test('user remove: the user can no longer log in; errors exit non-zero', async () => {
  assert.is((await cli(['remove', 'dave'])).code, 0);
  assert.is((await loginResult('dave', 'new-dave-pw', 530)).code, 530);
  const [missing, existing, badName, badMount, badPermission, badRoot, badAction] = await Promise.all([
    cli(['remove', 'dave']),
    cli(['add', 'admin', '--password-stdin'], 'x\n'),
    cli(['add', 'bad name']),
    cli(['add', 'f', '--mount', '/x=nope']),
    cli(['add', 'f', '--permissions', 'read,fly']),
    cli(['add', 'f', '--root', 'relative']),
    cli(['frobnicate']),
  ]);
  assert.is(missing.code, 1, 'removing a missing user');
  assert.is(existing.code, 1, 'adding an existing user');
  assert.is(badName.code, 2);
  assert.is(badMount.code, 1);
  assert.match(badMount.stderr, /--mount/);
  assert.is(badPermission.code, 2);
  assert.match(badPermission.stderr, /fly/);
  assert.is(badRoot.code, 2);
  assert.is(badAction.code, 2);
  const still = await loginResult('admin', 'admin-pw', 230);
  assert.is(still.code, 230, 'other users unaffected');
  still.client.close();
});

test.run();
