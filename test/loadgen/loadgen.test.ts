// The scale benchmark's load generator: its statistics on known inputs, and its accounting in a
// real run — 20 sessions (half RETR, half STOR) against pyftpdlib on local disk (stock ftp-srv when
// pyftpdlib is not installed), through the real child processes. Asserts bytes per session, the
// bytes that reached the server's disk, and that every session was counted once.

import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runLoad } from '../../benchmarks/loadgen/coordinator.ts';
import { FtpControl } from '../../benchmarks/loadgen/ftp-client.ts';
import { ftpTransfer } from '../../benchmarks/loadgen/ftp-transfer.ts';
import { TransferMeter, nowMs } from '../../benchmarks/loadgen/meter.ts';
import { counterPairs, kernelTcpLine, socketBytes, startKernelTcp } from '../../benchmarks/loadgen/kernel-tcp.ts';
import { jainIndex, median, minMedianRatio, percentile } from '../../benchmarks/loadgen/metrics.ts';
import { PERIOD_BYTES, slice } from '../../benchmarks/loadgen/pattern.ts';
import { readMinorFaults } from '../../benchmarks/loadgen/proc-stats.ts';
import { summariseTransfers } from '../../benchmarks/loadgen/summarise.ts';
import { ftpSrvStockPeer } from '../../benchmarks/peers/ftp-srv-stock.ts';
import { debInstalled } from '../../benchmarks/peers/process-util.ts';
import { pyftpdlibPeer } from '../../benchmarks/peers/pyftpdlib.ts';
import type { PeerInstance } from '../../benchmarks/peers/types.ts';

test("Jain's index on known inputs", () => {
  assert.is(jainIndex([5, 5, 5, 5]), 1);
  assert.is(jainIndex([1, 0, 0, 0]), 0.25);
  // (1+2+3)² / (3 · (1+4+9)) = 36 / 42
  assert.ok(Math.abs(jainIndex([1, 2, 3])! - 36 / 42) < 1e-12);
  // k of n sessions share equally, the rest get nothing: index k/n
  assert.ok(Math.abs(jainIndex([2, 2, 2, 0, 0, 0, 0, 0, 0, 0])! - 0.3) < 1e-12);
  assert.is(jainIndex([]), null);
  assert.is(jainIndex([0, 0]), null);
});

test('percentiles, median and min/median ratio', () => {
  const values = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted order
  assert.is(percentile(values, 50), 50);
  assert.is(percentile(values, 99), 99);
  assert.is(percentile(values, 100), 100);
  assert.is(median([3, 1, 2, 10]), 2.5);
  assert.is(minMedianRatio([2, 4, 4, 8]), 0.5);
  assert.is(percentile([], 50), null);
});

test('minor page faults: counted for a live process as it touches fresh memory, NaN once it is gone', () => {
  const before = readMinorFaults(process.pid);
  assert.ok(Number.isFinite(before) && before > 0, String(before));
  const fresh = Buffer.allocUnsafeSlow(32 * 1024 * 1024); // an mmap of its own: pages not yet touched
  fresh.fill(1);
  const after = readMinorFaults(process.pid);
  assert.ok(after > before, `${before} -> ${after}`);
  assert.ok(Number.isNaN(readMinorFaults(2 ** 22 + 12345)), 'a pid that does not exist');
});

/** /proc texts as a kernel writes them (fields cut down), for one instant of a run. */
function procAt(t: { pressures: number; chronoMs: number; drops: number; prunes: number; timeouts: number; retrans: number; memPages: number }): (path: string) => string | null {
  const files: Record<string, string> = {
    '/proc/net/netstat':
      'TcpExt: SyncookiesSent PruneCalled TCPTimeouts TCPMemoryPressures TCPMemoryPressuresChrono TCPRcvQDrop\n' +
      `TcpExt: 0 ${t.prunes} ${t.timeouts} ${t.pressures} ${t.chronoMs} ${t.drops}\n` +
      'IpExt: InNoRoutes InOctets\nIpExt: 0 123456\n',
    '/proc/net/snmp': `Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm ActiveOpens RetransSegs\nTcp: 1 10 ${t.retrans}\n`,
    '/proc/net/sockstat': `sockets: used 8\nTCP: inuse 3 orphan 0 tw 10 alloc 5 mem ${t.memPages}\nUDP: inuse 0 mem 0\n`,
    '/proc/sys/net/ipv4/tcp_mem': '287907\t383879\t575814\n',
    '/proc/sys/net/ipv4/tcp_congestion_control': 'bbr\n',
    '/sys/class/net/lo/mtu': '65536\n',
  };
  return (path) => files[path] ?? null;
}

test('host TCP counters: deltas over the run, the socket-memory peak of the samples, the pressure mark', () => {
  let now = procAt({ pressures: 5, chronoMs: 1000, drops: 100, prunes: 7, timeouts: 40, retrans: 900, memPages: 100 });
  const k = startKernelTcp((path) => now(path));
  now = procAt({ pressures: 8, chronoMs: 4500, drops: 160, prunes: 9, timeouts: 47, retrans: 1000, memPages: 5000 });
  k.sample();
  now = procAt({ pressures: 9, chronoMs: 5000, drops: 170, prunes: 12, timeouts: 50, retrans: 1100, memPages: 300 });
  const r = k.end();
  assert.equal(r, {
    memoryPressures: 4,
    memoryPressureMs: 4000,
    receiveQueueDrops: 70,
    prunes: 5,
    retransmitTimeouts: 10,
    retransmittedSegments: 200,
    peakSocketBytes: 5000 * 4096,
    pressureMarkBytes: 383879 * 4096,
    congestionControl: 'bbr',
    loopbackMtu: 65536,
  });
  assert.match(kernelTcpLine('x', r), /socket memory peak 20 MiB \(pressure mark 1500 MiB\), memory pressure 4 times for 4\.0 s, receive-queue drops 70/);
  assert.match(kernelTcpLine('x', r), /congestion control bbr, loopback MTU 65536$/);
  // A kernel without a counter (or no /proc): null, never a made-up 0.
  const bare = startKernelTcp(() => null).end();
  assert.is(bare.memoryPressures, null);
  assert.is(bare.peakSocketBytes, null);
  assert.is(bare.pressureMarkBytes, null);
  assert.is(bare.congestionControl, null);
  assert.is(bare.loopbackMtu, null);
  assert.equal(counterPairs('TcpExt: A B\nTcpExt: 1 2\nIpExt: C\nIpExt: 3\n'), new Map([['TcpExt:A', 1], ['TcpExt:B', 2], ['IpExt:C', 3]]));
});

test('host TCP counters: this kernel has every one of them', () => {
  const { congestionControl, ...r } = startKernelTcp().end();
  for (const [key, value] of Object.entries(r)) assert.ok(value !== null && value >= 0, `${key}: ${value}`);
  assert.match(congestionControl ?? '', /^[a-z0-9_]+$/);
  assert.ok(r.pressureMarkBytes! > 0);
  assert.ok((socketBytes() ?? -1) >= 0);
});

test('the payload pattern: same bytes for the same session anywhere, different sessions differ', () => {
  const a = Buffer.from(slice(7, 1000, 4096));
  const wrapped = Buffer.concat([slice(7, PERIOD_BYTES - 10, 10), slice(7, PERIOD_BYTES, 10)]);
  assert.ok(wrapped.equals(Buffer.from(slice(7, PERIOD_BYTES - 10, 20))));
  assert.ok(a.equals(slice(7, 1000 + PERIOD_BYTES, 4096)), 'period');
  assert.not.ok(a.equals(slice(8, 1000, 4096)), 'sessions differ');
});

test('summary of transfer records: aggregate rate, stalls, completion', () => {
  const epoch = 1_000_000;
  const rec = (id: number, bytes: number, endMs: number, gapMs: number) => ({
    id,
    op: 'RETR' as const,
    expectedBytes: bytes,
    bytes,
    startMs: epoch,
    firstByteMs: epoch + 10,
    lastByteMs: endMs - 1,
    endMs,
    longestGapMs: gapMs,
    longestMidGapMs: gapMs,
    ok: true,
  });
  const s = summariseTransfers([rec(0, 1e6, epoch + 1000, 50), rec(1, 1e6, epoch + 2000, 700)], epoch);
  assert.is(s.bytes, 2e6);
  assert.is(s.aggregateMBps, 1); // 2 MB over 2 s
  assert.is(s.longestStallMs, 700);
  assert.is(s.jain, 0.9); // rates 1 and 0.5 MB/s: 2.25 / (2 · 1.25)
  assert.is(s.completionMs.max, 2000);
});

async function startServer(workDir: string): Promise<PeerInstance> {
  // CI installs python3-pyftpdlib (.ci/run); without it, stock ftp-srv (an npm dependency). Never
  // installs anything itself.
  const peer = (await debInstalled('python3-pyftpdlib')) ? pyftpdlibPeer : ftpSrvStockPeer;
  return peer.start({ workDir, pasvPorts: [61000, 61999], sessions: 20 });
}

test('a storm of 20 sessions: every byte accounted for, on the wire and on disk', async () => {
  const workDir = await mkdtemp(join(tmpdir(), 'dropftp-loadgen-test-'));
  const server = await startServer(workDir);
  try {
    const t = server.target;
    if (t.kind !== 'ftp') throw new Error('expected an FTP server');
    const sizeBytes = 256 * 1024 + 123;
    // the RETR source, uploaded with the client under test (pattern of session 999)
    const ctl = await FtpControl.connect(t.host, t.port);
    await ctl.login(t.user, t.password);
    await ftpTransfer(ctl, { op: 'STOR', path: 'src.bin', sizeBytes, sessionId: 999, stallTimeoutMs: 10_000 }, new TransferMeter(0, 'STOR', sizeBytes, nowMs(), 0));
    await ctl.quit();

    const raw = await runLoad({
      scenario: 'storm',
      target: t,
      sessions: 20,
      procs: 2,
      sizeBytes,
      op: 'mix',
      retrPath: 'src.bin',
      storPrefix: 'up-',
      loginConcurrency: 8,
      bucketMs: 50,
      timelineSessions: 20,
      noopMs: 1000,
      durationMs: 0,
      holdMs: 0,
      stallTimeoutMs: 10_000,
      replyTimeoutMs: 10_000,
      runTimeoutMs: 60_000,
      seed: 1,
      sourceAddresses: 1,
    });
    const transfers = raw.results.flatMap((r) => r.transfers);
    assert.is(transfers.length, 20);
    // Both children's CPU from 'go' on, summed: something, and no more than the machine had.
    assert.ok(raw.cpuSeconds > 0, `load generator CPU ${raw.cpuSeconds}`);
    assert.ok(raw.cpuSeconds <= (cpus().length * (raw.endMs - raw.epochMs)) / 1000 + 0.5, `load generator CPU ${raw.cpuSeconds} s in ${raw.endMs - raw.epochMs} ms`);
    assert.equal(
      transfers.map((x) => x.id).sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => i),
      'each session once',
    );
    for (const x of transfers) {
      assert.ok(x.ok, `session ${x.id}: ${x.error}`);
      assert.is(x.op, x.id % 2 === 0 ? 'RETR' : 'STOR');
      assert.is(x.bytes, sizeBytes, `session ${x.id} bytes`);
      assert.is(
        x.buckets!.reduce((a, b) => a + b, 0),
        sizeBytes,
        `session ${x.id} timeline sums to its bytes`,
      );
      assert.ok(x.firstByteMs! >= x.startMs && x.endMs! >= x.lastByteMs!);
    }
    assert.is(raw.counters.bytes, 20 * sizeBytes, 'progress counters agree');
    assert.is(raw.results.reduce((s, r) => s + r.logins.ok, 0), 20);
    // what the server wrote is exactly each session's pattern
    const root = join(workDir, 'files');
    const stored = readdirSync(root).filter((f) => f.startsWith('up-'));
    assert.is(stored.length, 10);
    for (const name of stored) {
      const id = Number(/up-(\d+)\.bin/.exec(name)![1]);
      assert.ok(readFileSync(join(root, name)).equals(Buffer.from(slice(id, 0, sizeBytes))), `${name} content`);
    }
    const s = summariseTransfers(transfers, raw.epochMs);
    assert.is(s.complete, 20);
    assert.ok(s.jain! > 0 && s.jain! <= 1);
  } finally {
    await server.close();
    await rm(workDir, { recursive: true, force: true });
  }
});

test.run();
