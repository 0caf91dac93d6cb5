// The box's ordered file writes (store/write-queue.ts): what is written is byte-exact, and a chunk
// queued as disposable (a request body's, the whole of its buffer, 32 KiB or more) has its memory
// freed once its write is done or dropped, while a chunk that is not disposable, or a view of a
// larger buffer, is left as it was (someone else may still read it). A write cut short (a full
// disk; here a file-size limit, RLIMIT_FSIZE, in a child process) fails the queue instead of
// leaving a short file behind a successful drain.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WriteQueue } from '../../src/localbox/store/write-queue.ts';

const dir = mkdtempSync(join(tmpdir(), 'write-queue-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const KiB = 1024;

/** `n` bytes of a pattern that differs at every offset and from chunk to chunk. */
function chunk(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafeSlow(n); // its own ArrayBuffer, as the HTTP parser's chunks are
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

test('disposable chunks are written byte-exact, then their memory is freed; others are left alone', async () => {
  const q = new WriteQueue();
  const path = join(dir, 'a');
  q.open(path, 'w');
  const disposable = Array.from({ length: 40 }, (_, i) => chunk(64 * KiB + i, i));
  const kept = chunk(100 * KiB, 99);
  const big = chunk(256 * KiB, 98);
  const view = big.subarray(KiB, 65 * KiB); // a view: not the whole of its buffer
  const expected = Buffer.concat([...disposable.slice(0, 20), kept, view, ...disposable.slice(20)]);
  for (const c of disposable.slice(0, 20)) q.write(c, true);
  q.write(kept);
  q.write(view, true);
  for (const c of disposable.slice(20)) q.write(c, true);
  q.close();
  await q.drain();
  q.end();
  assert.ok(readFileSync(path).equals(expected), 'file content');
  for (const c of disposable) assert.is(c.length, 0, 'a disposable chunk is freed (detached) once written');
  assert.is(kept.length, 100 * KiB);
  assert.is(view.length, 64 * KiB);
  assert.is(big.length, 256 * KiB);
  assert.is(big[KiB], (KiB * 31 + 98 * 7) & 0xff);
});

test('disposable chunks still pending when the queue is abandoned are freed too', async () => {
  const q = new WriteQueue();
  q.open(join(dir, 'b'), 'w');
  const c = chunk(64 * KiB, 1);
  q.write(c, true);
  await q.abandon();
  assert.is(c.length, 0);
});

test('a write cut short by a file-size limit fails the queue; nothing reads as written', () => {
  const path = join(dir, 'limited');
  const limit = 1024 * KiB + 12345;
  const module = pathToFileURL(join(import.meta.dirname, '../../src/localbox/store/write-queue.ts')).href;
  const code = `
    import { WriteQueue } from ${JSON.stringify(module)};
    const q = new WriteQueue();
    q.open(${JSON.stringify(path)}, 'w');
    q.write(Buffer.alloc(${3 * 1024 * KiB}, 7)); // one writev at close: the kernel writes up to the limit
    q.close();
    try {
      await q.drain();
      console.log('drained');
    } catch (err) {
      console.log('failed ' + (err.code ?? err.message));
    }
  `;
  // Node ignores SIGXFSZ, so the write past the limit answers EFBIG instead of killing the child
  const r = spawnSync('prlimit', [`--fsize=${limit}`, process.execPath, ...process.execArgv, '--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout.trim(), 'failed EFBIG', r.stderr);
  assert.is(statSync(path).size, limit, 'the kernel wrote up to the limit (a short write happened)');
});

test.run();
