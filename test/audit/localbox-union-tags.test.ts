// Audit regression: the local box's union parser looked tags up with `in`, so inherited names
// (constructor, toString, __proto__ …) passed as tags. files/upload with mode
// {".tag":"constructor","constructor":"x"} was taken as a mode that is neither add nor update and
// overwrote the existing file instead of answering 400.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { LocalBoxAccount } from '../../src/localbox/index.ts';
import { makeBox, type TestBox } from '../localbox/helpers.ts';

let t: TestBox;
let alice: LocalBoxAccount;
const original = Buffer.from('original contents\n');

test.before(async () => {
  t = await makeBox();
  alice = await t.box.createAccount('alice');
  await t.sdk(alice).filesUpload({ path: '/f.txt', contents: original });
});
test.after(async () => {
  await t.cleanup();
});

async function stored(): Promise<string> {
  const res = await t.call('files/download', alice.accessToken, { arg: { path: '/f.txt' } });
  return Buffer.from(await res.arrayBuffer()).toString();
}

for (const tag of ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf']) {
  test(`files/upload refuses mode tag "${tag}" and leaves the file alone`, async () => {
    const res = await t.call('files/upload', alice.accessToken, {
      arg: { path: '/f.txt', mode: { '.tag': tag, [tag]: '0123456789a' } },
      headers: { 'Content-Type': 'application/octet-stream' },
      body: Buffer.from('overwritten!'),
    });
    const text = await res.text();
    assert.is(res.status, 400, `HTTP ${res.status}: ${text}`);
    assert.is(await stored(), original.toString());
  });
}

test('upload_session/start refuses session_type tag "constructor"', async () => {
  const res = await t.call('files/upload_session/start', alice.accessToken, {
    arg: { session_type: { '.tag': 'constructor', constructor: 'x' } },
    headers: { 'Content-Type': 'application/octet-stream' },
    body: Buffer.from('x'),
  });
  await res.arrayBuffer();
  assert.is(res.status, 400);
});

test.run();
