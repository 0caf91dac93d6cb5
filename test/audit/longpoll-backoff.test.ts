// Audit regression: the directory cache used the longpoll reply's `backoff` and a 429's
// `retry_after` as they came off the wire. A huge backoff (beyond 2^31-1 ms Node fires the timer at
// once), Infinity, NaN (a string), a negative value or a 429 asking for 1 ms, from a server that
// answers at once, made a request loop; a merely long backoff (days) slept through refresh().
// A tiny real HTTP server here speaks list_folder, continue and longpoll with such values (the
// local box only ever sends sane ones); the cache under test is the real one, over real sockets.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import { sleep } from '../helpers/wait.ts';
import * as assert from 'uvu/assert';
import { DirectoryCache } from '../../src/sync/index.ts';

let server: Server;
let url = '';

/** One cache's view of the server: its cursor is its token; longpoll answers `reply`. */
interface Case {
  reply: { status: number; body: string };
  longpolls: number;
  continues: number;
}
const cases = new Map<string, Case>();

test.before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const route = req.url ?? '';
      const args = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { cursor?: string };
      const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      const c = cases.get(args.cursor ?? token);
      let status = 200;
      let body = JSON.stringify({ entries: [], cursor: args.cursor ?? token, has_more: false });
      if (!c) status = 404;
      else if (route.endsWith('/list_folder/longpoll')) {
        c.longpolls++;
        ({ status, body } = c.reply);
      } else if (route.endsWith('/list_folder/continue')) c.continues++;
      else if (!route.endsWith('/list_folder')) status = 404;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

test.after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});


function startCache(name: string, reply: Case['reply']): { cache: DirectoryCache; seen: Case } {
  const seen: Case = { reply, longpolls: 0, continues: 0 };
  cases.set(name, seen);
  const cache = new DirectoryCache({ apiUrl: url, accessToken: name, name, minBackoffMs: 200, maxBackoffMs: 2000 }).start();
  return { cache, seen };
}

async function closePromptly(caches: DirectoryCache[]): Promise<void> {
  const closing = performance.now();
  await Promise.all(caches.map((c) => c.close()));
  assert.ok(performance.now() - closing < 1000, 'close() is prompt');
}

const TOO_MANY = (retryAfter: string) =>
  `{"error_summary": "too_many_requests/", "error": {"reason": {".tag": "too_many_requests"}, "retry_after": ${retryAfter}}}`;

test('bad longpoll backoffs and retry_afters, answered at once: no request loop', async () => {
  // 1e400 is Infinity once parsed; "soon" is NaN once multiplied; 1e12 s is beyond 2^31-1 ms.
  const replies: Record<string, Case['reply']> = {};
  for (const backoff of ['1e12', '1e400', '-5', '"soon"', '0']) replies[`backoff ${backoff}`] = { status: 200, body: `{"changes": false, "backoff": ${backoff}}` };
  replies['changes=true for ever'] = { status: 200, body: '{"changes": true}' };
  for (const retryAfter of ['0.001', '1e400', '-1', '"x"']) replies[`429 retry_after ${retryAfter}`] = { status: 429, body: TOO_MANY(retryAfter) };
  const running = Object.entries(replies).map(([name, reply]) => ({ name, ...startCache(name, reply) }));
  try {
    await Promise.all(running.map((r) => r.cache.ready));
    const before = running.map((r) => r.seen.longpolls + r.seen.continues);
    await sleep(1500);
    running.forEach((r, i) => {
      const requests = r.seen.longpolls + r.seen.continues - before[i]!;
      assert.ok(r.seen.longpolls >= 1, `${r.name}: the cache polls`);
      // At least 200 ms between longpolls: at most ~8 in 1.5 s, and as many continues.
      assert.ok(requests <= 20, `${r.name}: ${requests} requests in 1.5 s`);
    });
  } finally {
    await closePromptly(running.map((r) => r.cache));
  }
});

test('a backoff of days still lets refresh() through (a continue at once), and close() ends it', async () => {
  const { cache, seen } = startCache('days', { status: 200, body: '{"changes": false, "backoff": 1000000}' });
  try {
    await cache.ready;
    for (let i = 0; i < 100 && seen.longpolls === 0; i++) await sleep(10);
    assert.is(seen.longpolls, 1, 'first longpoll sent');
    await sleep(100); // now sleeping through the backoff
    const continues = seen.continues;
    cache.refresh();
    for (let i = 0; i < 100 && seen.continues === continues; i++) await sleep(10);
    assert.ok(seen.continues > continues, 'refresh() was not served during the backoff');
    assert.is(seen.longpolls, 1, 'the backoff still holds the next longpoll');
  } finally {
    await closePromptly([cache]);
  }
});

test.run();
