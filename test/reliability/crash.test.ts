// Crash safety: `dropftp serve` runs as a child process under FTP load (overwriting STORs, renames,
// deletes); each round kill -9s either dropftp or its local box at a seeded random moment. Then the
// local box is reopened on the same data dir and checked: every file is its old or its new version,
// whole (hashes); a rename left exactly one of its two names; metadata lists what it holds; no temp
// file survives and every block file on disk is referenced (unreferenced ones were collected).
// dropftp itself must survive its box being killed. RELIABILITY_LONG=1: many rounds.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alive, childPids } from '../helpers/processes.ts';
import { adminOf, startLocalBox, type LocalBox } from '../../src/localbox/index.ts';
import { RawFtp, upload } from '../ftp/helpers/raw-client.ts';
import { BoxView, KiB, LONG, MiB, SEED, boxUpload, pattern, prng, sha256, sleep } from './helpers.ts';

const ROUNDS = Number(process.env.CRASH_ROUNDS ?? (LONG ? 30 : 3));
const BIN = fileURLToPath(new URL('../../bin/dropftp.mjs', import.meta.url));
const UPLOADS = 4;
const MOVES = 3;
const DELETES = 3;

let dataDir: string;
let user = '';
let password = '';
const rnd = prng(SEED + 3);
const current = new Map<string, Buffer>(); // path → the version known to be committed
const children = new Set<ChildProcess>(); // dropftp processes still running (killed in after)
const report = { rounds: 0, killedDropftp: 0, killedLocalbox: 0, uploadsAttempted: 0, renamesAttempted: 0, deletesAttempted: 0, filesVerified: 0 };

test.before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'dropftp-crash-'));
});
test.after(async () => {
  if (process.env.RELIABILITY_REPORT) console.log(`RELIABILITY_REPORT crash ${JSON.stringify(report)}`);
  for (const child of children) child.kill('SIGKILL');
  await sleep(300);
  await rm(dataDir, { recursive: true, force: true });
});

interface Serve {
  child: ChildProcess;
  port: number;
  output: string[];
}

async function serve(): Promise<Serve> {
  const firstRun = password === '';
  const child = spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dropftp serve did not start: ${output.join('')}`)), 30_000);
    child.once('exit', (code) => reject(new Error(`dropftp serve exited ${code}: ${output.join('')}`)));
    child.stdout!.on('data', (d: Buffer) => {
      const text = d.toString();
      output.push(text);
      const created = /created FTP user "([^"]+)" with password: (\S+)/.exec(text);
      if (created) [user, password] = [created[1]!, created[2]!];
      const all = output.join('');
      const listening = /listening on ftp:\/\/127\.0\.0\.1:(\d+)/.exec(all);
      // The first run prints its new user after the address: wait for it.
      if (listening && (firstRun ? all.includes('shown only this once') : true)) {
        clearTimeout(timer);
        resolve(Number(listening[1]));
      }
    });
  });
  child.removeAllListeners('exit');
  children.add(child);
  child.once('exit', () => children.delete(child));
  return { child, port, output };
}

async function waitDead(pid: number): Promise<void> {
  for (let i = 0; i < 200 && alive(pid); i++) await sleep(50);
  assert.ok(!alive(pid), `process ${pid} still alive`);
}

async function openBox(): Promise<{ box: LocalBox; view: BoxView }> {
  const box = await startLocalBox({ dataDir: join(dataDir, 'localbox') }, { gcIntervalMs: 0 });
  return { box, view: await BoxView.open(box.url, dataDir) };
}

function blockFiles(): { blocks: number; tmp: number } {
  const root = join(dataDir, 'localbox', 'blocks');
  let blocks = 0;
  for (const sub of readdirSync(root)) if (sub !== 'tmp') blocks += readdirSync(join(root, sub)).length;
  return { blocks, tmp: readdirSync(join(root, 'tmp')).length };
}

async function ftp(port: number): Promise<RawFtp> {
  const c = await RawFtp.connect(port);
  await c.login(user, password);
  return c;
}

/** Load cut short by the kill: every operation may fail; none may leave a mixed state. */
function load(port: number, round: number, fresh: Map<string, Buffer>): Promise<unknown>[] {
  const jobs: Promise<unknown>[] = [];
  for (let i = 0; i < UPLOADS; i++) {
    const bytes = pattern(i === 0 ? 0 : Math.floor(rnd() * 6 * MiB) + 1, round * 100 + i);
    fresh.set(`/crash/u${i}.bin`, bytes);
    jobs.push(ftp(port).then(async (c) => {
      await upload(c, `STOR /crash/u${i}.bin`, bytes);
      c.close();
    }));
  }
  jobs.push(ftp(port).then(async (c) => {
    for (let i = 0; i < MOVES; i++) {
      await c.cmd(`RNFR /crash/m${i}.bin`);
      await c.cmd(`RNTO /crash/moved-r${round}-m${i}.bin`);
    }
    for (let i = 0; i < DELETES; i++) await c.cmd(`DELE /crash/d${i}.bin`);
    c.close();
  }));
  return jobs.map((j) => j.catch(() => undefined));
}

async function seed(view: BoxView): Promise<void> {
  for (let i = 0; i < MOVES; i++) await seedFile(view, `/crash/m${i}.bin`, pattern(200 * KiB + i, 7000 + i));
  for (let i = 0; i < DELETES; i++) await seedFile(view, `/crash/d${i}.bin`, pattern(50 * KiB + i, 8000 + i));
  for (let i = 0; i < UPLOADS; i++) if (!current.has(`/crash/u${i}.bin`)) await seedFile(view, `/crash/u${i}.bin`, pattern(5 * MiB + i, 9000 + i));
}

async function seedFile(view: BoxView, path: string, bytes: Buffer): Promise<void> {
  await boxUpload(view, path, bytes);
  current.set(path, bytes);
}

async function verify(view: BoxView, box: LocalBox, round: number, fresh: Map<string, Buffer>): Promise<void> {
  // First (before this check deletes anything): the start-up collection left no orphan.
  const disk = blockFiles();
  const stats = await adminOf(box).adminCall<{ referencedBlocks: number }>('GET', 'stats');
  assert.is(disk.tmp, 0, 'temp files survived the restart');
  assert.is(disk.blocks, stats.referencedBlocks, 'block files on disk vs referenced blocks (orphans not collected)');
  const gc = await adminOf(box).adminCall<{ deletedBlocks: number }>('POST', 'gc');
  assert.is(gc.deletedBlocks, 0, 'start-up gc left orphans');
  const files = await view.listFiles();
  report.filesVerified += files.size;
  for (const [path, meta] of files) {
    const bytes = await view.download(path);
    assert.ok(bytes, `${path} listed but not downloadable`);
    assert.is(bytes!.length, meta.size, `${path}: size in metadata`);
  }
  for (let i = 0; i < UPLOADS; i++) {
    const path = `/crash/u${i}.bin`;
    const bytes = await view.download(path);
    assert.ok(bytes, `${path} vanished`);
    const ok = [current.get(path)!, fresh.get(path)!].some((v) => sha256(v) === sha256(bytes!));
    assert.ok(ok, `${path}: ${bytes!.length} bytes are neither the old nor the new version`);
    current.set(path, bytes!);
  }
  for (let i = 0; i < MOVES; i++) {
    const from = await view.download(`/crash/m${i}.bin`);
    const to = await view.download(`/crash/moved-r${round}-m${i}.bin`);
    assert.ok((from === null) !== (to === null), `rename m${i}: exactly one name must exist`);
    assert.ok((from ?? to)!.equals(current.get(`/crash/m${i}.bin`)!), `rename m${i}: content`);
    if (to) await view.rpc('files/delete_v2', { path: `/crash/moved-r${round}-m${i}.bin` });
  }
  for (let i = 0; i < DELETES; i++) {
    const got = await view.download(`/crash/d${i}.bin`);
    if (got) assert.ok(got.equals(current.get(`/crash/d${i}.bin`)!), `d${i}: old content or gone`);
  }
}

test(`${ROUNDS} rounds of kill -9 (dropftp or its local box) during uploads, renames and deletes`, async () => {
  // First start creates the account and the user; seed through the box directly.
  let s = await serve();
  assert.ok(password, 'first run prints the new user');
  s.child.kill('SIGTERM');
  await new Promise((r) => s.child.once('exit', r));
  for (let round = 0; round < ROUNDS; round++) {
    const { box, view } = await openBox();
    await seed(view);
    await box.close();
    s = await serve();
    const boxPid = childPids(s.child.pid!)[0]!;
    const fresh = new Map<string, Buffer>();
    const jobs = load(s.port, round, fresh);
    await sleep(150 + rnd() * 1200);
    const victim = round % 2 === 0 ? 'dropftp' : 'localbox';
    report.rounds++;
    report[victim === 'dropftp' ? 'killedDropftp' : 'killedLocalbox']++;
    report.uploadsAttempted += UPLOADS;
    report.renamesAttempted += MOVES;
    report.deletesAttempted += DELETES;
    if (victim === 'dropftp') s.child.kill('SIGKILL');
    else {
      process.kill(boxPid, 'SIGKILL');
      await sleep(400);
      assert.ok(s.child.exitCode === null && s.child.signalCode === null, `dropftp died when its box was killed: ${s.output.join('')}`);
      // Still answering on the control channel.
      const c = await RawFtp.connect(s.port);
      assert.is((await c.cmd('NOOP')).code, 200);
      c.close();
      s.child.kill('SIGKILL');
    }
    await Promise.all(jobs);
    await waitDead(s.child.pid!);
    await waitDead(boxPid); // the box exits when its parent's IPC channel closes
    const reopened = await openBox();
    await verify(reopened.view, reopened.box, round, fresh);
    await reopened.box.close();
  }
});

test.run();
