// The sessions list of /status.json, rebuilt incrementally (src/admin/session-rows.ts), against rows
// the test derives from its own record of what happened: random connects, disconnects, commands
// (multi-byte and hostile text included), logins, PROT and AUTH, with refreshes between them; every
// refresh must show every change at once. Also the 1000-row cut, and the string escaper.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RecentActivity } from '../../src/admin/recent.ts';
import { jsonString } from '../../src/admin/session-rows.ts';
import { SessionWatch, shownCommand, type CommandSeen, type SessionLike } from '../../src/admin/session-watch.ts';
import { MAX_LISTED, StatusModel } from '../../src/admin/status-model.ts';
import { mulberry32 } from '../../src/util/prng.ts';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
interface Known {
  session: Mutable<SessionLike>;
  connectedAtMs: number;
  running: { seen: CommandSeen; shown: string; startedAtMs: number }[];
  last: string | null;
}

const ARGS = ['a.txt', 'dossier/été.jpg', '<img src=x onerror=alert(1)>', 'say "hi"\\now', '😀 emoji', 'tab\there', '\ud800lone', 'x'.repeat(300), ''];
const VERBS = ['NOOP', 'RETR', 'STOR', 'RNFR', 'RNTO', 'LIST', 'CWD', 'PASS', 'SITE'];
const iso = (ms: number): string => new Date(ms).toISOString();

function expectedRow(k: Known): Record<string, unknown> {
  const s = k.session;
  const running = k.running[0];
  return {
    id: s.id,
    user: s.authenticated ? (s.username ?? null) : null,
    client: s.controlPeerAddress,
    since: iso(k.connectedAtMs),
    command: running?.shown ?? null,
    commandSince: running ? iso(running.startedAtMs) : null,
    lastCommand: k.last,
    tls: s.secure,
    dataTls: s.dataProtection === 'P',
  };
}

function world(seed: number) {
  const random = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  let nowMs = 1_700_000_000_000;
  const now = (): number => nowMs;
  const watch = new SessionWatch(now);
  const sessions = new Map<string, Mutable<SessionLike>>();
  const known = new Map<string, Known>();
  const newModel = (): StatusModel => new StatusModel({ sessions: () => sessions.values(), watch, recent: new RecentActivity(), engine: () => null, startedAtMs: nowMs, now });
  let next = 0;
  const connect = (): void => {
    const id = `s${next++}-${pick(['a', 'é', '"q"'])}`;
    const session: Mutable<SessionLike> = { id, username: undefined, authenticated: false, controlPeerAddress: pick(['192.0.2.1', '2001:db8::7', '::ffff:198.51.100.9']), secure: false, dataProtection: 'C', transfer: null };
    sessions.set(id, session);
    watch.connected(id, session);
    known.set(id, { session, connectedAtMs: nowMs, running: [], last: null });
  };
  /** One random change, as the FTP layer makes it (field changes happen inside a command). */
  const change = (): void => {
    const ids = [...known.keys()];
    const roll = random();
    if (ids.length === 0 || roll < 0.1) return connect();
    const k = known.get(pick(ids))!;
    const id = k.session.id;
    if (roll < 0.15) {
      sessions.delete(id);
      watch.disconnected(id);
      known.delete(id);
      return;
    }
    if (k.running.length > 0 && roll < 0.5) {
      const done = k.running.splice(Math.floor(random() * k.running.length), 1)[0]!;
      if (random() < 0.3) [k.session.authenticated, k.session.username] = [true, pick(['alice', 'bob', 'zoë', '<b>x</b>'])];
      if (random() < 0.2) k.session.dataProtection = k.session.dataProtection === 'P' ? 'C' : 'P';
      if (random() < 0.1) k.session.secure = true;
      if (random() < 0.05) [k.session.authenticated, k.session.username] = [false, undefined];
      watch.commandEnded(id, done.seen);
      k.last = done.shown;
      return;
    }
    const verb = pick(VERBS);
    const arg = pick(ARGS);
    const seen = watch.commandStarted(id, verb, arg)!;
    k.running.push({ seen, shown: shownCommand(verb, arg), startedAtMs: nowMs });
  };
  return { random, watch, known, sessions, newModel, connect, change, advance: (ms: number) => void (nowMs += ms) };
}

test('jsonString is JSON.stringify for any text (quotes, backslashes, controls, surrogates, multi-byte)', () => {
  const random = mulberry32(17);
  const samples = ['', 'plain', 'a"b', 'a\\b', '\n\r\t\b\f', '\u0000\u001f\u007f', '\u2028\u2029', '\ud800', '\udfff\ud800', '😀', 'é…', '<img src=x onerror=alert(1)>'];
  for (let i = 0; i < 2000; i++) {
    const units = Array.from({ length: Math.floor(random() * 12) }, () => pick(random));
    samples.push(String.fromCharCode(...units));
  }
  for (const text of samples) assert.is(jsonString(text), JSON.stringify(text), JSON.stringify(text));
  assert.is(jsonString(null), 'null');
  assert.is(jsonString(undefined), 'null');
});

/** A code unit from the ranges that matter to JSON: controls, quote, backslash, ASCII, Latin-1, BMP, surrogates. */
function pick(random: () => number): number {
  const ranges = [[0, 0x1f], [0x22, 0x22], [0x5c, 0x5c], [0x20, 0x7e], [0x7f, 0xff], [0x100, 0xd7ff], [0xd800, 0xdfff], [0xe000, 0xffff]] as const;
  const [lo, hi] = ranges[Math.floor(random() * ranges.length)]!;
  return lo + Math.floor(random() * (hi - lo + 1));
}

test('every refresh shows every change since the last one, the rest unchanged (random changes, 3 seeds)', () => {
  for (const seed of [1, 2, 3]) {
    const w = world(seed);
    const model = w.newModel();
    for (let i = 0; i < 30; i++) w.connect();
    let refreshes = 0;
    for (let round = 0; round < 150; round++) {
      const changes = w.random() < 0.3 ? 0 : Math.floor(w.random() * 8);
      for (let c = 0; c < changes; c++) {
        w.change();
        w.advance(Math.floor(w.random() * 1500));
      }
      const expected = [...w.known.values()].map(expectedRow);
      // A second model on the same watch (caches on shared entries, a list laid out since this
      // model's last one) must neither be fooled nor fool.
      if (round % 25 === 24) assert.equal((w.newModel().snapshot() as { sessions: unknown[] }).sessions, expected, `seed ${seed}, second model`);
      const out = model.snapshot() as { sessions: unknown[]; totals: { sessions: number; loggedIn: number } };
      refreshes++;
      assert.equal(out.sessions, expected, `seed ${seed}, round ${round}`);
      assert.is(out.totals.sessions, w.known.size);
      assert.is(out.totals.loggedIn, [...w.known.values()].filter((k) => k.session.authenticated).length);
    }
    assert.is(refreshes, 150);
  }
});

test('a byte count, a new session, an ended one and a login show on the next refresh', () => {
  const w = world(9);
  const model = w.newModel();
  w.connect();
  w.connect();
  const [a, b] = [...w.known.values()];
  const seen = w.watch.commandStarted(a!.session.id, 'STOR', 'up.bin')!;
  w.watch.fileOpened(a!.session.id, '/up.bin', 'upload', null);
  const transfer = { directive: 'STOR', bytes: 10 };
  a!.session.transfer = transfer;
  let out = model.snapshot() as any;
  assert.is(out.transfers[0].bytes, 10);
  transfer.bytes = 4096;
  out = model.snapshot() as any;
  assert.is(out.transfers[0].bytes, 4096);
  w.connect();
  out = model.snapshot() as any;
  assert.is(out.sessions.length, 3);
  w.sessions.delete(b!.session.id);
  w.watch.disconnected(b!.session.id);
  out = model.snapshot() as any;
  assert.equal(out.sessions.map((s: { id: string }) => s.id), [a!.session.id, [...w.known.keys()][2]]);
  const login = w.watch.commandStarted(a!.session.id, 'PASS', 'secret')!;
  [a!.session.authenticated, a!.session.username] = [true, 'carol'];
  w.watch.commandEnded(a!.session.id, login);
  out = model.snapshot() as any;
  assert.is(out.sessions[0].user, 'carol');
  assert.is(out.sessions[0].command, 'STOR up.bin');
  assert.is(out.sessions[0].lastCommand, 'PASS ****');
  assert.not.ok(JSON.stringify(out).includes('secret'));
  w.watch.commandEnded(a!.session.id, seen);
  out = model.snapshot() as any;
  assert.is(out.sessions[0].command, null);
  assert.is(out.transfers.length, 0);
});

test('a field changed outside a command shows when the list is next rebuilt (any session changing)', () => {
  const w = world(5);
  const model = w.newModel();
  w.connect();
  w.connect();
  const [a, b] = [...w.known.values()];
  const other = (): void => w.watch.commandEnded(b!.session.id, w.watch.commandStarted(b!.session.id, 'NOOP', ''));
  const row = (): any => (model.snapshot() as any).sessions[0];
  row();
  [a!.session.authenticated, a!.session.username] = [true, 'dave'];
  other();
  assert.is(row().user, 'dave');
  a!.session.secure = true;
  other();
  assert.is(row().tls, true);
  a!.session.dataProtection = 'P';
  other();
  assert.is(row().dataTls, true);
});

test(`only the first ${MAX_LISTED} sessions are listed; one leaving lets the next in`, () => {
  const w = world(4);
  const model = w.newModel();
  for (let i = 0; i < MAX_LISTED + 5; i++) w.connect();
  let out = model.snapshot() as any;
  assert.is(out.sessions.length, MAX_LISTED);
  assert.is(out.totals.sessions, MAX_LISTED + 5);
  const ids = [...w.known.keys()];
  w.sessions.delete(ids[3]!);
  w.watch.disconnected(ids[3]!);
  w.watch.commandStarted(ids[MAX_LISTED]!, 'NOOP', '');
  out = model.snapshot() as any;
  assert.is(out.sessions.length, MAX_LISTED);
  assert.is(out.sessions[MAX_LISTED - 1].id, ids[MAX_LISTED]);
  assert.is(out.sessions[MAX_LISTED - 1].command, 'NOOP');
  assert.is(out.sessions[3].id, ids[4]);
});

test.run();
