// A gateway killed (SIGKILL) in the middle of an operation that moved an entry aside, under a hidden
// .dropftp-rename- name: RNTO over a file (the old file aside, the source not moved in yet) and a
// case-only rename of a folder (the folder under its temporary name). The gateway runs in a process
// of its own (fixtures/aside-gateway.ts); its local box holds the operation's next move_v2 (the
// fault's `skip` lets the earlier ones through) while the test kills it. Started again on the same
// data directory, the gateway puts back what its journal (<dataDir>/asides.json) says was moved
// aside: nothing stays where no FTP client can reach it. Without the journal the old file and the
// folder stayed hidden for good, and the folder's name was empty.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startDropftp, type Dropftp } from '../../src/server.ts';
import { RawFtp, download, sleep, upload } from '../ftp/helpers/raw-client.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/aside-gateway.ts', import.meta.url));

let dataDir: string;
let user = '';
let password = '';
const children = new Set<ChildProcess>();

test.before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'dropftp-aside-crash-'));
});
test.after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await sleep(300);
  await rm(dataDir, { recursive: true, force: true });
});

interface Child {
  port: number;
  /** Sends one command; resolves with the line it answers. */
  ask(cmd: object): Promise<Record<string, unknown>>;
  kill(): Promise<void>;
}

async function gatewayProcess(): Promise<Child> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, dataDir], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => children.delete(child));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, unknown>> => {
    const r = await Promise.race([lines.next(), exited.then(() => ({ done: true, value: '' }))]);
    if (r.done) throw new Error('the gateway process ended');
    return JSON.parse(r.value as string) as Record<string, unknown>;
  };
  const hello = await next();
  if (typeof hello.user === 'string') [user, password] = [hello.user, hello.password as string];
  return {
    port: hello.port as number,
    ask: async (cmd) => {
      child.stdin!.write(`${JSON.stringify(cmd)}\n`);
      return next();
    },
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Kills the gateway once its box holds the next move_v2 after `skip` of them; `start` begins the operation. */
async function killDuring(gateway: Child, skip: number, start: () => void): Promise<void> {
  await gateway.ask({ hold: 'files/move_v2', skip });
  start();
  for (let i = 0; i < 200; i++) {
    if (((await gateway.ask({ counts: true })).latency ?? 0) === 1) return gateway.kill();
    await sleep(25);
  }
  throw new Error('the move was never held');
}

/** The gateway started again on the data directory (it replays its journal), a session of it, then `check`. */
async function restarted(check: (c: RawFtp, service: Dropftp) => Promise<void>): Promise<void> {
  const service = await startDropftp({ dataDir, host: '127.0.0.1', port: 0, engineWorkers: 1 });
  try {
    const c = await RawFtp.connect(service.port);
    await c.login(user, password);
    await check(c, service);
    c.close();
  } finally {
    await service.close();
  }
}

async function hiddenIn(service: Dropftp, folder: string): Promise<string[]> {
  const store = await service.accounts.get('local');
  return (await store.rpc.listFolder(folder)).map((e) => e.name).filter((n) => n.startsWith('.dropftp-'));
}

test('RNTO over a file, killed after the old file went aside: the old file is back at its name', async () => {
  const gateway = await gatewayProcess();
  const c = await RawFtp.connect(gateway.port);
  await c.login(user, password);
  assert.is((await upload(c, 'STOR /rx/src.txt', Buffer.from('source'))).final.code, 226);
  assert.is((await upload(c, 'STOR /rx/dst.txt', Buffer.from('destination'))).final.code, 226);
  assert.is((await c.cmd('RNFR /rx/src.txt')).code, 350);
  // move_v2 calls: src onto dst (refused: it exists), dst aside, then src to dst: held.
  await killDuring(gateway, 2, () => c.send('RNTO /rx/dst.txt'));
  c.socket.destroy();

  await restarted(async (d, service) => {
    assert.is((await download(d, 'RETR /rx/dst.txt')).data.toString(), 'destination', 'the old file is back');
    assert.is((await download(d, 'RETR /rx/src.txt')).data.toString(), 'source', 'the source where it was');
    assert.equal(await hiddenIn(service, '/rx'), [], 'nothing left hidden');
    assert.equal(JSON.parse(await readFile(join(dataDir, 'asides.json'), 'utf8')), [], 'the journal is settled');
  });
});

test('a case-only rename of a folder, killed between its two moves: the folder is back with its files', async () => {
  const gateway = await gatewayProcess();
  const c = await RawFtp.connect(gateway.port);
  await c.login(user, password);
  for (const name of ['a.txt', 'b.txt']) assert.is((await upload(c, `STOR /cx/dir/${name}`, Buffer.from(name))).final.code, 226);
  assert.is((await c.cmd('RNFR /cx/dir')).code, 350);
  // move_v2 calls: dir to its temporary name, then to DIR: held.
  await killDuring(gateway, 1, () => c.send('RNTO /cx/DIR'));
  c.socket.destroy();

  await restarted(async (d, service) => {
    const list = await download(d, 'NLST /cx/dir');
    assert.equal(list.data.toString().split('\r\n').filter(Boolean).sort(), ['a.txt', 'b.txt']);
    assert.equal(await hiddenIn(service, '/cx'), [], 'nothing left hidden');
  });
});

test.run();
