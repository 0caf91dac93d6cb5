// What the server loads of ftp-srv: its reply texts and the registration files of the five verbs
// it borrows, never its command registry (which loads every command, and with them lodash,
// bluebird and moment: megabytes of an idle gateway and a slower start, issue 16). Test code only.

import { createRequire } from 'node:module';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

test('importing the server loads only ftp-srv messages and the borrowed verbs, and none of lodash, bluebird, moment', async () => {
  await import('../../src/server.ts');
  const loaded = Object.keys(createRequire(import.meta.url).cache).map((file) => file.replaceAll('\\', '/'));
  const ftpSrv = loaded.filter((file) => file.includes('/node_modules/ftp-srv/')).map((file) => file.slice(file.indexOf('/node_modules/ftp-srv/') + '/node_modules/ftp-srv/'.length));
  assert.equal(ftpSrv.sort(), [
    'src/commands/registration/allo.js',
    'src/commands/registration/mode.js',
    'src/commands/registration/noop.js',
    'src/commands/registration/stru.js',
    'src/commands/registration/syst.js',
    'src/messages.js',
  ]);
  assert.equal(loaded.filter((file) => /\/node_modules\/(lodash|bluebird|moment)\//.test(file)), []);
});

test.run();
