// Pure parts of users and access control: the path jail's component check, the verb ↔ permission
// table against the real command table, mount specs, users-file validation, and the login cache
// (a wrong password never hits it; it stays bounded).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildCommandTable } from '../../src/ftp/commands/index.ts';
import { resolveClientPath, toDropboxPath } from '../../src/ftp/fs/paths.ts';
import { parseMountSpec, checkMountSet } from '../../src/users/mounts.ts';
import { LoginCache, hashPassword } from '../../src/users/password.ts';
import { NEUTRAL_VERBS, PERMISSION_VERBS, deniedVerbs, READ_ONLY_PERMISSIONS } from '../../src/users/permissions.ts';
import { parseUsersFile, resolveUser } from '../../src/users/users-file.ts';

function code(run: () => unknown): string | null {
  try {
    run();
    return null;
  } catch (err) {
    return (err as { code?: string }).code ?? 'thrown';
  }
}

test('jail: traversal look-alikes are refused, ordinary names pass', () => {
  const refused = [
    '%2e%2e', '%2E%2e/x', '..%2f', '%2f', '%5c', '%252e%252e', '\uFF0E\uFF0E', '\u2025', '\u2024\u2024', '\uFE52\uFE52', 'a\uFF0Fb', 'a\uFF3Cb',
    'a\u2215b', 'a\u2044b', 'a\u29F8b', 'a\\b', '..\u200B', '.. ', ' ..', '.\u00A0', 'a\0b', '%00',
    // plain ASCII (its only form is itself): white space around dots still makes a dot segment
    '. .', '\t..', '..\r', '.\t', ' . ',
    // a line break: a reply naming it would end a line there ("MKD /crdir\r226 injected")
    'crdir\r226 injected', 'a\rb', 'a\nb',
  ];
  for (const name of refused) assert.is(code(() => resolveClientPath('/', `/dir/${name}/f`)), 'DROPFTP_ERR_BAD_PATH', JSON.stringify(name));
  const fine = ['naïve é.txt', '100%', '%zz', '...', '.hidden', 'a..b', 'x -> y', 'id:abc', 'rev:123', '日本語．txt', 'ａｂｃ', 'a b', '. . .', '-', '~$&', '{x}[y]|z'];
  for (const name of fine) assert.is(resolveClientPath('/', `/dir/${name}`), `/dir/${name}`, JSON.stringify(name));
  assert.is(resolveClientPath('/a/b', '../../../../x'), '/x');
  assert.is(resolveClientPath('/', '/../..'), '/');
  assert.is(toDropboxPath('/alice', resolveClientPath('/', 'id:abc')), '/alice/id:abc', 'an id is a name inside the root');
  assert.is(toDropboxPath('', '/'), '');
  assert.is(code(() => toDropboxPath('/alice', 'id:abc')), 'DROPFTP_ERR_BAD_PATH');
});

test('every command that touches storage is guarded by a permission; the rest are named neutral', () => {
  const guarded = new Set(Object.values(PERMISSION_VERBS).flat());
  const neutral = new Set(NEUTRAL_VERBS);
  for (const spec of new Set(buildCommandTable().values())) {
    const covered = guarded.has(spec.name) || neutral.has(spec.name) || (spec.guardedBy ?? []).some((v) => guarded.has(v));
    assert.ok(covered, `${spec.name}: add it to PERMISSION_VERBS or NEUTRAL_VERBS (src/users/permissions.ts)`);
  }
  const readOnly = new Set(deniedVerbs(READ_ONLY_PERMISSIONS));
  for (const verb of ['STOR', 'APPE', 'STOU', 'DELE', 'RMD', 'MKD', 'RNFR', 'RNTO', 'SITE', 'MFMT']) assert.ok(readOnly.has(verb), verb);
  for (const verb of ['RETR', 'LIST', 'NLST', 'MLSD', 'SIZE']) assert.ok(!readOnly.has(verb), verb);
});

test('mount specs: string and map forms, read-only, validation', () => {
  assert.equal(parseMountSpec('/shared=team:/proj'), { path: '/shared', account: 'team', folder: '/proj', readOnly: false });
  assert.equal(parseMountSpec('/a/b=bob:/:ro'), { path: '/a/b', account: 'bob', folder: '', readOnly: true });
  assert.equal(parseMountSpec('/x=bob:/with:colon:rw'), { path: '/x', account: 'bob', folder: '/with:colon', readOnly: false });
  for (const bad of ['shared=team:/proj', '/=team:/p', '/a=:/p', '/a=team', '/a=te am:/p', '/a/../b=team:/p', '/a=team:relative', '/%2e%2e=team:/p']) {
    assert.is(code(() => parseMountSpec(bad)), 'DROPFTP_ERR_CONFIG', bad);
  }
  assert.is(code(() => checkMountSet([parseMountSpec('/a=t:/x'), parseMountSpec('/a/b=t:/y')], 'm')), 'DROPFTP_ERR_CONFIG');
});

test('users file: defaults, read-only shorthand, errors name the user and option', async () => {
  const hash = await hashPassword('pw');
  const user = resolveUser('alice', { password: hash, root: '/alice/', 'read-only': true, mounts: ['/s=team:/p:ro'] });
  assert.is(user.account, 'local');
  assert.is(user.root, '/alice');
  assert.equal([...user.permissions].sort(), ['list', 'read']);
  assert.is(user.mounts[0]!.readOnly, true);
  const cases: [unknown, RegExp][] = [
    [{ password: 'plain' }, /users\.bob\.password/],
    [{ password: hash, root: 'relative' }, /users\.bob\.root/],
    [{ password: hash, root: '/a/%2e%2e' }, /users\.bob\.root/],
    [{ password: hash, permissions: ['read', 'fly'] }, /users\.bob\.permissions.*fly/],
    [{ password: hash, account: 'a b' }, /users\.bob\.account/],
    [{ password: hash, mounts: ['/x=team'] }, /users\.bob\.mounts\[0\]/],
    // A misspelt restriction must stop the load, not leave the user every right.
    [{ password: hash, permisions: ['list'] }, /users\.bob\.permisions: unknown field \(did you mean permissions\?\)/],
    [{ password: hash, readonly: true }, /users\.bob\.readonly: unknown field \(did you mean read-only\?\)/],
    [[hash], /users\.bob must be a map/],
    // Loaded, then every login failed with an internal error: scrypt needs N a power of two above 1.
    [{ password: 'scrypt$1$8$1$AAAA$BBBB' }, /users\.bob\.password: N must be a power of two/],
    [{ password: 'scrypt$3000$8$1$AAAA$BBBB' }, /users\.bob\.password: N must be a power of two/],
    [{ password: 'scrypt$16384$8$1$$BBBB' }, /users\.bob\.password: the salt and the hash must not be empty/],
  ];
  for (const [record, message] of cases) {
    try {
      resolveUser('bob', record);
      assert.unreachable(JSON.stringify(record));
    } catch (err) {
      assert.match((err as Error).message, message);
    }
  }
  assert.throws(() => parseUsersFile('users: [1, 2]'), /"users" must be a map/);
  // "user:" for "users:" read as a file with no user (and a fresh full-rights user was made).
  assert.throws(() => parseUsersFile('user:\n  alice:\n    password: x'), /user: unknown field \(did you mean users\?\)/);
  assert.throws(() => parseUsersFile('users:\n  "bad name":\n    password: x'), /bad user name/);
});

test('login cache: a wrong password never hits it, a right one does, it stays bounded', async () => {
  const hash = await hashPassword('right');
  const cache = new LoginCache(60_000, 3);
  assert.is(await cache.verify('u', 'right', hash), true);
  assert.is(cache.misses, 1);
  assert.is(await cache.verify('u', 'right', hash), true);
  assert.is(cache.hits, 1, 'second login served from the cache');
  assert.is(await cache.verify('u', 'wrong', hash), false);
  assert.is(await cache.verify('u', 'wrong', hash), false);
  assert.is(cache.hits, 1, 'a wrong password never hits');
  assert.is(await cache.verify('v', 'right', hash), true, 'another user name is its own entry');
  assert.is(cache.hits, 1);
  const other = await hashPassword('right');
  assert.is(await cache.verify('u', 'right', other), true, 'a changed hash is a miss');
  assert.is(cache.hits, 1);
  for (const name of ['a', 'b', 'c', 'd']) await cache.verify(name, 'right', hash);
  assert.is(cache.size, 3, 'bounded');
  const checks = await Promise.all(Array.from({ length: 20 }, () => new LoginCache().verify('w', 'right', hash)));
  assert.ok(checks.every(Boolean));
  const shared = new LoginCache();
  await Promise.all(Array.from({ length: 20 }, () => shared.verify('w', 'right', hash)));
  assert.is(shared.misses, 1, 'concurrent checks of one login share one scrypt');
});

test.run();
