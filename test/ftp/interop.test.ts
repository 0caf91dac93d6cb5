// Real FTP clients against the service (`startDropftp`, as `dropftp serve` runs it) on the local
// box: curl (passive, active, resumed download and upload), lftp (mirror both ways in parallel,
// pget), Python's ftplib and basic-ftp round-trip files of 0 B, 1 B, 4 MiB ± 1 and 100 MiB with
// non-ASCII names, byte-exact. A client that is not installed fails the test (CI installs them).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { Client } from 'basic-ftp';
import { startStack, type Stack } from './helpers/stack.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const FILES: [string, number][] = [
  ['empty é.bin', 0],
  ['one ü.bin', 1],
  ['four-minus ñ.bin', 4 * MiB - 1],
  ['four 日本.bin', 4 * MiB],
  ['four-plus ø.bin', 4 * MiB + 1],
];
const contents = new Map(FILES.map(([name, size]) => [name, randomBytes(size)]));

let stack: Stack;
let local: string;
let url: string;

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function enc(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

test.before(async () => {
  stack = await startStack({ engineWorkers: 2 });
  local = await mkdtemp(join(tmpdir(), 'dropftp-interop-'));
  await mkdir(join(local, 'src'));
  for (const [name, bytes] of contents) await writeFile(join(local, 'src', name), bytes);
  url = `ftp://${stack.user}:${stack.password}@127.0.0.1:${stack.port}`;
});

test.after(async () => {
  await stack.stop();
  await rm(local, { recursive: true, force: true });
});

async function curl(...args: string[]): Promise<string> {
  const { stdout } = await run('curl', ['-sS', '--fail', '--max-time', '120', ...args], { maxBuffer: 1 << 20 });
  return stdout;
}

test('curl: passive and active upload and download, byte-exact', async () => {
  for (const [name, bytes] of contents) {
    const remote = `${url}/curl/${enc(name)}`;
    await curl('--ftp-create-dirs', '-T', join(local, 'src', name), remote);
    const outPassive = join(local, `curl-pasv-${name}`);
    await curl('-o', outPassive, remote);
    assert.is(sha(await readFile(outPassive)), sha(bytes), `passive ${name}`);
    const outActive = join(local, `curl-port-${name}`);
    await curl('-P', '127.0.0.1', '-o', outActive, remote);
    assert.is(sha(await readFile(outActive)), sha(bytes), `active ${name}`);
  }
  await curl('-P', '127.0.0.1', '--disable-eprt', '-T', join(local, 'src', 'one ü.bin'), `${url}/curl/active-up.bin`);
  await curl('-o', join(local, 'active-up.bin'), `${url}/curl/active-up.bin`);
  assert.is(sha(await readFile(join(local, 'active-up.bin'))), sha(contents.get('one ü.bin')!), 'active upload');
});

test('curl: resumed download and resumed upload (-C -)', async () => {
  const name = 'four-plus ø.bin';
  const bytes = contents.get(name)!;
  const partial = join(local, 'resume-down.bin');
  await writeFile(partial, bytes.subarray(0, 1234567));
  await curl('-C', '-', '-o', partial, `${url}/curl/${enc(name)}`);
  assert.is(sha(await readFile(partial)), sha(bytes), 'REST + RETR');
  // The server holds a prefix; curl asks SIZE and APPEnds the rest.
  const half = join(local, 'half.bin');
  await writeFile(half, bytes.subarray(0, 2 * MiB + 3));
  await curl('-T', half, `${url}/curl/resumed-up.bin`);
  await curl('-C', '-', '-T', join(local, 'src', name), `${url}/curl/resumed-up.bin`);
  const back = join(local, 'resumed-back.bin');
  await curl('-o', back, `${url}/curl/resumed-up.bin`);
  assert.is(sha(await readFile(back)), sha(bytes), 'SIZE + APPE');
});

test('lftp: mirror both ways in parallel, pget', async () => {
  const down = join(local, 'lftp-down');
  const script = [
    'set cmd:fail-exit yes',
    'set net:max-retries 2',
    'set net:timeout 20',
    'set ftp:ssl-allow no',
    `open -u ${stack.user},${stack.password} -p ${stack.port} 127.0.0.1`,
    `mirror -R --parallel=4 "${join(local, 'src')}" /lftp`,
    `mirror --parallel=4 /lftp "${down}"`,
    `pget -n 4 "/lftp/four-plus ø.bin" -o "${join(local, 'pget.bin')}"`,
  ].join('; ');
  await run('lftp', ['-c', script], { maxBuffer: 1 << 20, timeout: 120_000 });
  const got = (await readdir(down)).sort();
  assert.equal(got, [...contents.keys()].sort());
  for (const [name, bytes] of contents) assert.is(sha(await readFile(join(down, name))), sha(bytes), name);
  assert.is(sha(await readFile(join(local, 'pget.bin'))), sha(contents.get('four-plus ø.bin')!));
});

test("Python's ftplib: storbinary and retrbinary", async () => {
  const py = `
import ftplib, hashlib, os, sys
src, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
f = ftplib.FTP(encoding='utf-8')
f.connect('127.0.0.1', port, timeout=60)
f.login(user, pw)
f.mkd('/py')
for name in sorted(os.listdir(src)):
    with open(os.path.join(src, name), 'rb') as fh:
        f.storbinary('STOR /py/' + name, fh)
out = []
for name in sorted(f.nlst('/py')):
    h = hashlib.sha256()
    f.retrbinary('RETR /py/' + name, h.update)
    out.append(name + '\\t' + h.hexdigest())
f.quit()
print('\\n'.join(out))
`;
  const { stdout } = await run('python3', ['-c', py, join(local, 'src'), String(stack.port), stack.user, stack.password], { timeout: 120_000 });
  const lines = stdout.trim().split('\n').sort();
  const expected = [...contents].map(([name, bytes]) => `${name}\t${sha(bytes)}`).sort();
  assert.equal(lines, expected);
});

test('basic-ftp: uploadFrom and downloadTo', async () => {
  const client = new Client(30_000);
  try {
    await client.access({ host: '127.0.0.1', port: stack.port, user: stack.user, password: stack.password });
    await client.ensureDir('/basic ftp');
    for (const [name, bytes] of contents) await client.uploadFrom(Readable.from([bytes]), name);
    for (const [name, bytes] of contents) {
      const chunks: Buffer[] = [];
      await client.downloadTo(new Writable({ write: (chunk, _e, cb) => (chunks.push(chunk), cb()) }), name);
      assert.is(sha(Buffer.concat(chunks)), sha(bytes), name);
    }
    const listed = (await client.list()).map((f) => [f.name, f.size]).sort();
    assert.equal(listed, [...contents].map(([name, bytes]) => [name, bytes.length]).sort());
  } finally {
    client.close();
  }
});

test('100 MiB: curl up, lftp pget down, ftplib down, byte-exact', async () => {
  const big = randomBytes(100 * MiB);
  const path = join(local, 'big 大.bin');
  await writeFile(path, big);
  const digest = sha(big);
  await curl('--ftp-create-dirs', '-T', path, `${url}/big/${enc('big 大.bin')}`);
  const viaPget = join(local, 'big-pget.bin');
  await run('lftp', ['-c', `set cmd:fail-exit yes; set ftp:ssl-allow no; open -u ${stack.user},${stack.password} -p ${stack.port} 127.0.0.1; pget -n 4 "/big/big 大.bin" -o "${viaPget}"`], { timeout: 120_000 });
  assert.is(sha(await readFile(viaPget)), digest);
  const py = `
import ftplib, hashlib, sys
f = ftplib.FTP(encoding='utf-8'); f.connect('127.0.0.1', int(sys.argv[1]), timeout=60); f.login(sys.argv[2], sys.argv[3])
h = hashlib.sha256(); f.retrbinary('RETR /big/big 大.bin', h.update, blocksize=1<<20); f.quit(); print(h.hexdigest())
`;
  const { stdout } = await run('python3', ['-c', py, String(stack.port), stack.user, stack.password], { timeout: 120_000 });
  assert.is(stdout.trim(), digest);
});

test.run();
