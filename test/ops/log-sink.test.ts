// Standard output of the process logger (src/log/sink.ts), in real processes writing to a pipe:
// records made in one turn of the event loop, then an exit in that same turn (process.exit, an
// uncaught exception), all reach the pipe, whole, once each and in order — a few (written at exit)
// and thousands (past the 64 KiB at which a batch is written at once).

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const BURST = fileURLToPath(new URL('./fixtures/log-burst.ts', import.meta.url));

/**
 * Runs the fixture. With `readerDelay`, nothing is read from its stdout (a slow reader) for that
 * many ms after it starts, or, with 'logged', until it says on stderr that every record is made;
 * with 'gone', its stdout is closed at once (the reader went away).
 */
async function burst(count: number, end: 'exit' | 'throw' | 'turns', readerDelay: number | 'logged' | 'gone' = 0): Promise<{ code: number | null; lines: string[]; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', BURST, String(count), end], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  if (readerDelay === 'gone') child.stdout.destroy();
  else child.stdout.on('data', (d: Buffer) => out.push(d));
  if (readerDelay === 'logged' || (typeof readerDelay === 'number' && readerDelay > 0)) child.stdout.pause();
  if (typeof readerDelay === 'number' && readerDelay > 0) setTimeout(() => child.stdout.resume(), readerDelay);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString('utf8');
    if (readerDelay === 'logged' && stderr.includes('logged\n')) child.stdout.resume();
  });
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, lines: Buffer.concat(out).toString('utf8').split('\n').filter((l) => l !== ''), stderr };
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

// Regression: a CI run got 1,625 of 2,000 lines. Its reader was slow, the non-blocking pipe was
// full, and the sink handed the rest to process.stdout, whose queued writes process.exit() drops.
// 20,000 records (~4 MB) outgrow any pipe or socket buffer while the reader waits 1.5 s.
test('20,000 records then process.exit, read by a reader that starts late: every record is written, in order', async () => {
  const { code, lines } = await burst(20_000, 'exit', 1500);
  assert.is(code, 0);
  assertSequence(lines, 20_000);
});

test('20,000 records over 20 turns to a reader that starts late, then a natural end: every record is written, in order', async () => {
  const { code, lines } = await burst(20_000, 'turns', 1500);
  assert.is(code, 0);
  assertSequence(lines, 20_000);
});

test('a reader stalled past 16 MiB of records: later records are dropped and counted, what is kept stays in order', async () => {
  // ~250 B a record: 120,000 records in 20 turns are ~30 MB, past the 16 MiB the sink holds back.
  const count = 120_000;
  const { code, lines } = await burst(count, 'turns', 'logged');
  assert.is(code, 0);
  const records = lines.map((l) => JSON.parse(l) as { seq?: number; msg: string; droppedBytes?: number });
  const kept = records.filter((r) => r.msg === 'burst');
  const notes = records.filter((r) => r.droppedBytes !== undefined);
  assert.ok(kept.length < count, `some dropped (${kept.length} of ${count} kept)`);
  const keptBytes = lines.filter((_, i) => records[i]!.msg === 'burst').reduce((n, l) => n + l.length + 1, 0);
  assert.ok(keptBytes >= 16 * 1024 * 1024, `at least the 16 MiB held back kept (${keptBytes} B, ${kept.length} records)`);
  for (let i = 1; i < kept.length; i++) assert.ok(kept[i]!.seq! > kept[i - 1]!.seq!, `in order at ${i}`);
  assert.is(kept[0]!.seq, 0, 'nothing lost before the backlog filled');
  assert.ok(notes.length >= 1 && notes.every((n) => n.droppedBytes! > 0), JSON.stringify(notes));
  // The warning reads like the records around it (pino's ISO time, level 40).
  for (const n of notes as unknown as { level: number; time: string }[]) {
    assert.is(n.level, 40);
    assert.match(n.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }
});

test('a reader that is gone (EPIPE): the records are discarded and the process goes on to its own exit', async () => {
  const { code, stderr } = await burst(20_000, 'exit', 'gone');
  assert.is(stderr, '', 'nothing thrown');
  assert.is(code, 0, 'process.exit(0) reached');
});

test('records then an uncaught exception in the same turn: every record is written', async () => {
  const { code, lines } = await burst(5, 'throw');
  assert.is(code, 1);
  assertSequence(lines, 5);
});

test.run();
