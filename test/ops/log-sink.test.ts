// Standard output of the process logger (src/log/sink.ts), in real processes writing to a pipe:
// records made in one turn of the event loop, then an exit in that same turn (process.exit, an
// uncaught exception), all reach the pipe, whole, once each and in order — a few (written at exit)
// and thousands (past the 64 KiB at which a batch is written at once).

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const BURST = fileURLToPath(new URL('./fixtures/log-burst.ts', import.meta.url));

async function burst(count: number, end: 'exit' | 'throw'): Promise<{ code: number | null; lines: string[] }> {
  const child = spawn(process.execPath, ['--import', 'tsx', BURST, String(count), end], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.resume();
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, lines: Buffer.concat(out).toString('utf8').split('\n').filter((l) => l !== '') };
}

function assertSequence(lines: string[], count: number): void {
  assert.is(lines.length, count, 'one line per record');
  lines.forEach((line, i) => {
    const record = JSON.parse(line) as { seq: number; msg: string };
    assert.is(record.seq, i, `record ${i} in order`);
    assert.is(record.msg, 'burst');
  });
}

for (const count of [3, 2000]) {
  test(`${count} records then process.exit in the same turn: every record is written, in order`, async () => {
    const { code, lines } = await burst(count, 'exit');
    assert.is(code, 0);
    assertSequence(lines, count);
  });
}

test('records then an uncaught exception in the same turn: every record is written', async () => {
  const { code, lines } = await burst(5, 'throw');
  assert.is(code, 1);
  assertSequence(lines, 5);
});

test.run();
