// The heap growth factor dropftp serve sets (src/util/heap-growth.ts): a flag node was started with
// wins; in a real child process the flag keeps the old generation within 1.5x of what survives a
// full collection (plus the young generation), where V8's own choice lets it grow further.
import { execFileSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HEAP_GROWING_PERCENT, heapGrowthFlag } from '../../src/util/heap-growth.ts';

test('the flag is set unless node was started with one', () => {
  assert.is(heapGrowthFlag([]), `--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  assert.is(heapGrowthFlag(['--max-semi-space-size=4', '--conditions=source']), `--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  assert.is(heapGrowthFlag(['--heap-growing-percent=20']), null);
  assert.is(heapGrowthFlag(['--heap_growing_percent=200']), null);
  assert.is(heapGrowthFlag(['--heap-growing-percent', '20']), null);
});

// ~60 MiB that stays alive, then a stream of objects that outlive two scavenges before they die
// (as a slow session's pending writes do): prints the largest heap seen over what a full GC keeps.
const CHILD = `
const { limitHeapGrowth } = await import(process.argv[1]);
if (process.argv[2] === 'limit') limitHeapGrowth([]);
const live = [];
for (let i = 0; i < 600000; i++) live.push({ a: i, b: 'x' + i, c: [i] });
const ring = new Array(200000);
let peak = 0;
for (let round = 0; round < 2000; round++) {
  for (let i = 0; i < 2000; i++) ring[(round * 2000 + i) % ring.length] = { r: round, i, s: [i, i] };
  peak = Math.max(peak, process.memoryUsage().heapTotal);
}
globalThis.gc();
console.log(JSON.stringify({ peak, kept: process.memoryUsage().heapUsed, n: live.length + ring.length }));
`;

function grow(mode: 'limit' | 'default'): { peak: number; kept: number } {
  const url = new URL('../../src/util/heap-growth.ts', import.meta.url).href;
  const out = execFileSync(process.execPath, ['--expose-gc', '--max-semi-space-size=4', '--import', 'tsx', '--input-type=module', '-e', CHILD, url, mode], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()!);
}

test('with the flag the heap stays near what survives; V8 by itself lets it grow further', () => {
  const limited = grow('limit');
  const free = grow('default');
  const ratio = (r: { peak: number; kept: number }): number => r.peak / r.kept;
  assert.ok(ratio(limited) < 1.9, `limited: peak ${(limited.peak / 2 ** 20).toFixed(0)} MiB over ${(limited.kept / 2 ** 20).toFixed(0)} MiB kept`);
  assert.ok(ratio(limited) < ratio(free), `limited ${ratio(limited).toFixed(2)}x, default ${ratio(free).toFixed(2)}x`);
});

test.run();
