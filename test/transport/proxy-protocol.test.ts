// PROXY protocol v1/v2 parser and socket reader: spec examples, byte-at-a-time delivery, bytes after
// the header kept, bounded length, timeout, and a seeded fuzz run (mutated and random headers never
// throw, and every "done" lies within the bytes given). Real sockets for the reader.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { parseProxyHeader, readProxyHeader, TrustedProxies, type ProxyHeader } from '../../src/ftp/proxy-protocol.ts';
import { FtpServer } from '../../src/ftp/server.ts';
import { mulberry32 } from '../../src/util/prng.ts';

const SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

function v2(command: number, family: number, body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head[0] = 0x20 | command;
  head[1] = family;
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([SIG, head, body]);
}
function v2tcp4(src: number[], dst: number[], sport: number, dport: number, tlv = Buffer.alloc(0)): Buffer {
  const body = Buffer.alloc(12);
  Buffer.from(src).copy(body, 0);
  Buffer.from(dst).copy(body, 4);
  body.writeUInt16BE(sport, 8);
  body.writeUInt16BE(dport, 10);
  return v2(1, 0x11, Buffer.concat([body, tlv]));
}

function done(buf: Buffer): { header: ProxyHeader; byteLength: number } {
  const r = parseProxyHeader(buf);
  if (r.state !== 'done') throw new Error(`expected done, got ${JSON.stringify(r)}`);
  return r;
}

test('v1: TCP4, TCP6, UNKNOWN, and the bytes after the header are not consumed', () => {
  const a = done(Buffer.from('PROXY TCP4 192.0.2.7 198.51.100.1 56324 21\r\nUSER x\r\n'));
  assert.equal(a.header, { version: 1, local: false, sourceAddress: '192.0.2.7', sourcePort: 56324, destinationAddress: '198.51.100.1', destinationPort: 21 });
  assert.is(a.byteLength, 'PROXY TCP4 192.0.2.7 198.51.100.1 56324 21\r\n'.length);
  const b = done(Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n'));
  assert.is(b.header.sourceAddress, '2001:db8::1');
  assert.is(b.header.destinationPort, 65535);
  assert.ok(done(Buffer.from('PROXY UNKNOWN whatever\r\n')).header.local);
  assert.ok(done(Buffer.from('PROXY UNKNOWN\r\n')).header.local);
});

test('v1: malformed lines are errors, prefixes are incomplete, over-long lines are errors', () => {
  for (const bad of [
    'PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n',
    'PROXY TCP4 ::1 5.6.7.8 1 2\r\n',
    'PROXY TCP6 1.2.3.4 ::1 1 2\r\n',
    'PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n',
    'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n',
    'USER anonymous\r\n',
    'GET / HTTP/1.1\r\n',
  ]) {
    assert.is(parseProxyHeader(Buffer.from(bad)).state, 'error', bad);
  }
  for (const prefix of ['P', 'PROX', 'PROXY ', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r']) {
    assert.is(parseProxyHeader(Buffer.from(prefix)).state, 'incomplete', prefix);
  }
  assert.is(parseProxyHeader(Buffer.from('PROXY UNKNOWN ' + 'x'.repeat(100))).state, 'error');
  assert.is(parseProxyHeader(Buffer.from('PROXY UNKNOWN ' + 'x'.repeat(100) + '\r\n')).state, 'error');
  assert.is(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\0\r\n')).state, 'error');
});

test('v2: TCP4 with TLVs, TCP6, LOCAL, UNSPEC; bad version, command, family, length', () => {
  const tlv = Buffer.from([0x04, 0x00, 0x03, 0x61, 0x62, 0x63]); // PP2_TYPE_NOOP, skipped
  const a = done(Buffer.concat([v2tcp4([10, 0, 0, 9], [10, 0, 0, 1], 40000, 990, tlv), Buffer.from('rest')]));
  assert.equal(a.header, { version: 2, local: false, sourceAddress: '10.0.0.9', sourcePort: 40000, destinationAddress: '10.0.0.1', destinationPort: 990 });
  assert.is(a.byteLength, 16 + 12 + tlv.length);
  const six = Buffer.alloc(36);
  six.writeUInt16BE(0x2001, 0);
  six.writeUInt16BE(0x0db8, 2);
  six[15] = 5;
  six.writeUInt16BE(0xffff, 26); // destination ::ffff:127.0.0.1
  Buffer.from([127, 0, 0, 1]).copy(six, 28);
  six.writeUInt16BE(1234, 32);
  six.writeUInt16BE(21, 34);
  const b = done(v2(1, 0x21, six));
  assert.is(b.header.sourceAddress, '2001:db8:0:0:0:0:0:5');
  assert.is(b.header.destinationAddress, '::ffff:127.0.0.1');
  assert.ok(done(v2(0, 0x11, Buffer.alloc(12))).header.local, 'LOCAL');
  assert.ok(done(v2(1, 0x00, Buffer.alloc(0))).header.local, 'UNSPEC');
  const badVersion = v2tcp4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2);
  badVersion[12] = 0x11;
  assert.is(parseProxyHeader(badVersion).state, 'error');
  assert.is(parseProxyHeader(v2(2, 0x11, Buffer.alloc(12))).state, 'error', 'command 2');
  assert.is(parseProxyHeader(v2(1, 0x12, Buffer.alloc(12))).state, 'error', 'UDP');
  assert.is(parseProxyHeader(v2(1, 0x31, Buffer.alloc(216))).state, 'error', 'unix');
  assert.is(parseProxyHeader(v2(1, 0x11, Buffer.alloc(8))).state, 'error', 'short TCP4 block');
  assert.is(parseProxyHeader(v2(1, 0x21, Buffer.alloc(20))).state, 'error', 'short TCP6 block');
  const huge = Buffer.concat([SIG, Buffer.from([0x21, 0x11, 0xff, 0xff])]);
  assert.is(parseProxyHeader(huge).state, 'error', 'length over the bound is refused before its bytes come');
  const whole = v2tcp4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2);
  for (let n = 1; n < whole.length; n++) assert.is(parseProxyHeader(whole.subarray(0, n)).state, 'incomplete', `prefix ${n}`);
});

test('fuzz: 20,000 mutated and random inputs never throw; done never claims bytes it was not given', () => {
  const rand = mulberry32(0x9e3779b9);
  const seeds = [
    Buffer.from('PROXY TCP4 192.0.2.7 198.51.100.1 56324 21\r\n'),
    Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n'),
    v2tcp4([10, 0, 0, 9], [10, 0, 0, 1], 40000, 990, Buffer.from([1, 0, 2, 0x68, 0x32])),
    v2(1, 0x21, Buffer.alloc(36)),
  ];
  let states = { done: 0, error: 0, incomplete: 0 };
  for (let i = 0; i < 20_000; i++) {
    let buf: Buffer;
    if (i % 4 === 3) {
      buf = Buffer.alloc(Math.floor(rand() * 200));
      for (let j = 0; j < buf.length; j++) buf[j] = Math.floor(rand() * 256);
      if (rand() < 0.5) SIG.copy(buf, 0, 0, Math.min(12, buf.length));
    } else {
      buf = Buffer.from(seeds[Math.floor(rand() * seeds.length)]!);
      const flips = 1 + Math.floor(rand() * 4);
      for (let f = 0; f < flips; f++) buf[Math.floor(rand() * buf.length)] = Math.floor(rand() * 256);
      buf = buf.subarray(0, Math.floor(rand() * (buf.length + 1)));
    }
    const r = parseProxyHeader(buf);
    states[r.state]++;
    if (r.state === 'done') assert.ok(r.byteLength <= buf.length && r.byteLength > 0);
  }
  assert.ok(states.error > 1000 && states.incomplete > 100 && states.done > 20, JSON.stringify(states));
});

test('TrustedProxies: exact addresses, CIDR blocks, IPv4-mapped peers; empty list trusts all; bad entries throw', () => {
  const t = new TrustedProxies(['127.0.0.1', '10.1.0.0/16', 'fd00::/8']);
  assert.ok(t.has('127.0.0.1'));
  assert.ok(t.has('::ffff:127.0.0.1'));
  assert.not.ok(t.has('127.0.0.2'));
  assert.ok(t.has('10.1.200.3'));
  assert.not.ok(t.has('10.2.0.1'));
  assert.ok(t.has('fd12::1'));
  assert.not.ok(t.has('fe80::1'));
  assert.not.ok(t.has(undefined));
  assert.ok(new TrustedProxies([]).has('203.0.113.9'));
  assert.throws(() => new TrustedProxies(['not-an-ip']));
  assert.throws(() => new TrustedProxies(['10.0.0.0/33']));
});

async function withServer(onSocket: (socket: Socket) => void, run: (port: number) => Promise<void>): Promise<void> {
  const server: Server = createServer({ pauseOnConnect: true }, onSocket);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await run((server.address() as { port: number }).port);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

test('reader: header sent one byte at a time, then data in the same chunk as its last byte; data kept', async () => {
  let result: Promise<{ header: ProxyHeader; after: string }> | null = null;
  await withServer(
    (socket) => {
      result = readProxyHeader(socket, { timeoutMs: 2000 }).then(
        (header) =>
          new Promise((resolve) => {
            let after = '';
            socket.on('data', (chunk: Buffer) => {
              after += chunk.toString();
              if (after.endsWith('\r\n')) {
                resolve({ header, after });
                socket.destroy();
              }
            });
            socket.resume();
          }),
      );
    },
    async (port) => {
      const client = connect(port, '127.0.0.1');
      await new Promise((resolve) => client.once('connect', resolve));
      const header = Buffer.from('PROXY TCP4 203.0.113.5 127.0.0.1 5555 21\r\n');
      for (let i = 0; i < header.length - 1; i++) {
        client.write(header.subarray(i, i + 1));
        await new Promise((r) => setTimeout(r, 1));
      }
      client.write(Buffer.concat([header.subarray(-1), Buffer.from('USER bob\r\n')]));
      const got = await new Promise<{ header: ProxyHeader; after: string }>((resolve) => {
        const wait = (): void => void (result ? result.then(resolve) : setTimeout(wait, 5));
        wait();
      });
      assert.is(got.header.sourceAddress, '203.0.113.5');
      assert.is(got.after, 'USER bob\r\n');
      client.destroy();
    },
  );
});

test('reader: a silent peer times out, garbage and an early close are refused', async () => {
  const outcomes: string[] = [];
  await withServer(
    (socket) => {
      readProxyHeader(socket, { timeoutMs: 200 }).then(
        () => outcomes.push('ok'),
        (err: Error) => {
          outcomes.push(err.message);
          socket.destroy();
        },
      );
    },
    async (port) => {
      const started = Date.now();
      const silent = connect(port, '127.0.0.1');
      silent.on('error', () => {});
      const closed = new Promise((resolve) => silent.once('close', resolve));
      await closed;
      assert.ok(Date.now() - started >= 150 && Date.now() - started < 2000, 'closed by the timeout');
      const garbage = connect(port, '127.0.0.1');
      garbage.on('error', () => {});
      garbage.write('SSH-2.0-OpenSSH\r\n');
      await new Promise((resolve) => garbage.once('close', resolve));
      const early = connect(port, '127.0.0.1');
      early.on('error', () => {});
      early.end('PROXY TCP4 1.2');
      await new Promise((resolve) => early.once('close', resolve));
    },
  );
  assert.equal(outcomes, ['no PROXY header within 200 ms', 'no PROXY protocol signature', 'connection closed before a complete PROXY header']);
});

test('FtpServer with proxyProtocol: 300 connections of mutated headers and junk, 30 at a time — each is closed or greeted, none crashes the server or lingers; a valid one is then served', async () => {
  const server = new FtpServer({ host: '127.0.0.1', port: 0, proxyProtocol: { headerTimeoutMs: 300 } });
  const { port } = await server.listen();
  let seed = 12345;
  const rand = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
  const seeds = [Buffer.from('PROXY TCP4 192.0.2.7 127.0.0.1 56324 21\r\n'), v2tcp4([192, 0, 2, 8], [127, 0, 0, 1], 1, 21)];
  const outcomes = { greeted: 0, closed: 0 };
  const one = async (i: number): Promise<void> => {
    const buf = Buffer.from(seeds[i % 2]!);
    if (i % 3 !== 0) for (let f = 0; f < 3; f++) buf[Math.floor(rand() * buf.length)] = Math.floor(rand() * 256);
    const cut = i % 5 === 0 ? buf.subarray(0, Math.floor(rand() * buf.length)) : buf;
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(cut);
    const greeted = await new Promise<boolean>((resolve) => {
      socket.once('data', (chunk: Buffer) => resolve(chunk.toString().startsWith('220 ')));
      socket.once('close', () => resolve(false));
    });
    outcomes[greeted ? 'greeted' : 'closed']++;
    socket.destroy();
  };
  for (let i = 0; i < 300; i += 30) await Promise.all(Array.from({ length: 30 }, (_, j) => one(i + j)));
  assert.ok(outcomes.greeted > 50 && outcomes.closed > 100, JSON.stringify(outcomes));
  await new Promise((r) => setTimeout(r, 100));
  assert.is(server.connectionCount, 0, 'no session left behind');
  const ok = connect(port, '127.0.0.1');
  ok.write('PROXY TCP4 198.51.100.1 127.0.0.1 1000 21\r\n');
  const line = await new Promise<string>((resolve) => ok.once('data', (chunk: Buffer) => resolve(chunk.toString())));
  assert.match(line, /^220 /);
  ok.destroy();
  await server.close();
});

test.run();
