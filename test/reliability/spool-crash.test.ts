// The upload spool across a crash: a real `dropftp serve` child with spooling forced (a 64 KiB
// memory share per upload) is killed with SIGKILL while STORs hold bytes in spool files under
// <data-dir>/spool; the restarted gateway sweeps them at start, commits none of the cut uploads,
// and a new spooling STOR ends 226 with identical bytes and leaves no spool file behind.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alive, childPids } from '../helpers/processes.ts';
import { RawFtp, download, openData, sleep, upload, until } from '../ftp/helpers/raw-client.ts';
import { MiB, pattern, sha256 } from './helpers.ts';

const BIN = fileURLToPath(new URL('../../bin/dropftp.mjs', import.meta.url));
const CUT = 3; // STORs cut by the kill

let dataDir: string;
let user = '';
let password = '';
const children = new Set<ChildProcess>();

test.before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'dropftp-spool-crash-'));
});
test.after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await sleep(300);
  await rm(dataDir, { recursive: true, force: true });
});

const spoolFiles = (): string[] => {
  try {
    return readdirSync(join(dataDir, 'spool')).filter((n) => n.endsWith('.spool'));
  } catch {
    return [];
  }
};

/** `dropftp serve` on dataDir with every upload spooling beyond 64 KiB; resolves once it listens. */
async function serve(): Promise<{ child: ChildProcess; port: number }> {
  const firstRun = password === '';
  const child = spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--engine-append-memory-bytes', '64KiB'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const output: string[] = [];
  child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dropftp serve did not start: ${output.join('')}`)), 30_000);
    child.once('exit', (code) => reject(new Error(`dropftp serve exited ${code}: ${output.join('')}`)));
    child.stdout!.on('data', (d: Buffer) => {
      output.push(d.toString());
      const all = output.join('');
      const created = /created FTP user "([^"]+)" with password: (\S+)/.exec(all);
      if (created) [user, password] = [created[1]!, created[2]!];
      const listening = /listening on ftp:\/\/127\.0\.0\.1:(\d+)/.exec(all);
      if (listening && (firstRun ? all.includes('shown only this once') : true)) {
        clearTimeout(timer);
        resolve(Number(listening[1]));
      }
    });
  });
  return { child, port };
}

async function ftp(port: number): Promise<RawFtp> {
  const c = await RawFtp.connect(port);
  await c.login(user, password);
  await c.cmd('TYPE I');
  return c;
}

test('kill -9 with uploads in the spool: the restart sweeps every spool file and commits none of them', async () => {
  const first = await serve();
  const clients: RawFtp[] = [];
  const datas: import('node:net').Socket[] = [];
  for (let i = 0; i < CUT; i++) {
    const c = await ftp(first.port);
    clients.push(c);
    const { port } = await c.pasv();
    const data = await openData(port);
    datas.push(data);
    c.send(`STOR /cut${i}.bin`);
    assert.is((await c.read()).code, 150);
    // 6 MiB of a file that never ends: far beyond the 64 KiB share, short of a call's size.
    data.write(pattern(6 * MiB, i));
  }
  await until(() => spoolFiles().length >= CUT, 20_000);
  const box = childPids(first.child.pid!);
  first.child.kill('SIGKILL');
  await until(() => !alive(first.child.pid!) && box.every((pid) => !alive(pid)), 20_000);
  for (const d of datas) d.destroy();
  for (const c of clients) c.close();
  assert.ok(spoolFiles().length >= CUT, 'the killed gateway left its spool files');

  const second = await serve();
  try {
    assert.equal(spoolFiles(), [], 'swept at start');
    const c = await ftp(second.port);
    try {
      for (let i = 0; i < CUT; i++) assert.is((await c.cmd(`SIZE /cut${i}.bin`)).code, 550, `cut upload ${i} committed nothing`);
      const bytes = pattern(5 * MiB + 7, 99);
      const put = await upload(c, 'STOR /after.bin', bytes);
      assert.is(put.final.code, 226, put.final.text);
      const got = await download(c, 'RETR /after.bin');
      assert.is(got.final.code, 226, got.final.text);
      assert.is(sha256(got.data), sha256(bytes), 'identical bytes');
      await until(() => spoolFiles().length === 0, 10_000);
    } finally {
      c.close();
    }
  } finally {
    second.child.kill('SIGTERM');
    await until(() => !alive(second.child.pid!), 20_000).catch(() => second.child.kill('SIGKILL'));
  }
});

test.run();
