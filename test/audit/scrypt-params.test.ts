// Audit regression: verifyPassword bounded only scrypt's N, not r or p. A users-file hash such as
// scrypt$16384$8$5000$… made every login of that user run ~5,000 scrypt passes (minutes) on one of
// libuv's 4 pool threads (file system and DNS share them): a few logins stalled the process; a large
// r asked for 128·N·r bytes at once (N=2^20, r=64: 8 GiB). Out-of-range parameters now fail the
// login at once.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hashPassword, verifyPassword } from '../../src/users/password.ts';
import { resolveUser } from '../../src/users/users-file.ts';

function withinMs<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

const salt = Buffer.alloc(16, 1).toString('base64');
const hash = Buffer.alloc(32, 2).toString('base64');

test('a hash with a huge p is refused at once', async () => {
  const result = await withinMs(verifyPassword('pw', `scrypt$16384$8$3000$${salt}$${hash}`), 1500);
  assert.is(result, false);
});

test('a hash whose 128·N·r exceeds the memory bound is refused at once', async () => {
  const result = await withinMs(verifyPassword('pw', `scrypt$1048576$4096$1$${salt}$${hash}`), 1500);
  assert.is(result, false);
});

test('hashes made by hashPassword still verify', async () => {
  const encoded = await hashPassword('secret');
  assert.is(await verifyPassword('secret', encoded), true);
  assert.is(await verifyPassword('wrong', encoded), false);
});

test('the users file refuses such a hash at load, naming the option', () => {
  for (const bad of [`scrypt$16384$8$5000$${salt}$${hash}`, `scrypt$1048576$64$1$${salt}$${hash}`, `scrypt$16384$8$1$${salt}`]) {
    try {
      resolveUser('eve', { password: bad });
      assert.unreachable(`accepted ${bad}`);
    } catch (err) {
      assert.match((err as Error).message, 'users.eve.password');
    }
  }
  assert.is(resolveUser('eve', { password: `scrypt$16384$8$1$${salt}$${hash}` }).name, 'eve');
});

test.run();
