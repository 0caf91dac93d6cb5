// The compiled server as shipped: bin/dropftp with plain node (no "source" condition), 2 workers and
// the local box, serves a STOR and a RETR byte-exact; neither the gateway nor its local box child
// imports tsx, esbuild or a .ts file (a resolve hook preloaded through NODE_OPTIONS fails and records
// any such import), and /proc shows none on their command lines, maps or open files. Needs a build
// (`npm test` runs `npm run build` first). Main thread of the test; the server is a child process.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Client } from 'basic-ftp';
import { freePort } from '../helpers/ports.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'dropftp');
const GUARD = new URL('./forbid-loader.mjs', import.meta.url).href;

let dir: string;
let server: ChildProcess;
let port: number;
let password: string;
let adminPort: number;

test.before(async () => {
  assert.ok(existsSync(join(ROOT, 'dist', 'src', 'cli', 'main.js')), 'dist/ is built (npm run build)');
  dir = mkdtempSync(join(tmpdir(), 'dropftp-dist-'));
  adminPort = await freePort();
  server = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--admin', `127.0.0.1:${adminPort}`, '--data-dir', join(dir, 'data'), '--engine-workers', '2', '--log-level', 'warn'], {
    env: { ...process.env, NODE_OPTIONS: `--import ${GUARD}`, FORBID_LOADER_LOG: join(dir, 'forbidden.log') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  server.stderr!.on('data', (d: Buffer) => (out += d));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line and password in 30 s: ${out}`)), 30_000);
    server.once('exit', (code) => reject(new Error(`server exited (${code}): ${out}`)));
    server.stdout!.on('data', (d: Buffer) => {
      out += d;
      const listening = /listening on ftp:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      const pw = /with password: (\S+)/.exec(out);
      if (listening && pw) {
        clearTimeout(timer);
        server.removeAllListeners('exit');
        port = Number(listening[1]);
        password = pw[1]!;
        resolve();
      }
    });
  });
});

test.after(async () => {
  if (server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

test('the compiled server serves the status page and its files (assets copied into dist/)', async () => {
  const page = await fetch(`http://127.0.0.1:${adminPort}/`);
  assert.is(page.status, 200);
  assert.match(await page.text(), /status\.js/);
  for (const file of ['status.js', 'status.css']) assert.is((await fetch(`http://127.0.0.1:${adminPort}/${file}`)).status, 200, file);
});

test('STOR then RETR through the compiled server are byte-exact', async () => {
  const data = randomBytes(3 * 1024 * 1024 + 11);
  const client = new Client(10_000);
  try {
    await client.access({ host: '127.0.0.1', port, user: 'ftp', password });
    await client.uploadFrom(Readable.from([data]), '/dist-check.bin');
    const chunks: Buffer[] = [];
    await client.downloadTo(new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }), '/dist-check.bin');
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    assert.is(sha(Buffer.concat(chunks)), sha(data));
  } finally {
    client.close();
  }
});

function processTree(pid: number): number[] {
  const kids = readdirSync(`/proc/${pid}/task`).flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
  return [pid, ...kids.flatMap(processTree)];
}

test('no process of the tree loads tsx, esbuild or TypeScript, and the local box child runs dist/', () => {
  assert.not.ok(existsSync(join(dir, 'forbidden.log')), existsSync(join(dir, 'forbidden.log')) ? readFileSync(join(dir, 'forbidden.log'), 'utf8') : '');
  const pids = processTree(server.pid!);
  const cmds = pids.map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean));
  assert.ok(cmds.some((c) => c.at(-1)?.endsWith(join('dist', 'src', 'localbox', 'child.js'))), `local box child from dist: ${JSON.stringify(cmds)}`);
  for (const [i, pid] of pids.entries()) {
    const cmd = cmds[i]!.join(' ');
    assert.not.match(cmd, /tsx|esbuild|\.ts(\s|$)/, `pid ${pid} command line: ${cmd}`);
    const maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
    assert.not.match(maps, /tsx|esbuild/, `pid ${pid} maps`);
    const fds = readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return '';
      }
    });
    assert.not.ok(fds.some((f) => /tsx|esbuild/.test(f)), `pid ${pid} open files: ${fds.join(' ')}`);
    // Their NODE_OPTIONS hold only this test's guard (the shipped unit and image set none).
    const nodeOptions = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').find((e) => e.startsWith('NODE_OPTIONS=')) ?? '';
    assert.not.match(nodeOptions, /tsx|esbuild|conditions/, `pid ${pid} ${nodeOptions}`);
  }
});

test.run();
