// Login rate of real dropftp (`bin/dropftp.mjs serve`, a child process) over TCP: 1,000 FTP
// sessions (connect, USER, PASS, QUIT) with distinct credentials (every PASS is a scrypt
// verification, N=16384 r=8 p=1, on the server's libuv thread pool), then with repeated credentials
// (verified-login cache hits), compared with baselines measured in the same run: raw scrypt
// verifications/s in this process at the same concurrency, and sessions/s that never log in
// (connect, greeting, QUIT: the protocol's own cost). The server runs under bin/with-tuned-malloc,
// as installed (libuv pool from the CPU count; the scrypt gate of src/users/scrypt-gate.ts).
// Usage: node --import tsx benchmarks/login-rate.ts [--sessions 1000] [--concurrency 32]
// Output: benchmarks/results/login-rate.json

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hashPassword, scryptGate, verifyPassword } from '../src/users/password.ts';
import { writeUsersFile, type UserRecord } from '../src/users/users-file.ts';

const BIN = fileURLToPath(new URL('../bin/dropftp.mjs', import.meta.url));
const LAUNCHER_ENV = fileURLToPath(new URL('../bin/with-tuned-malloc', import.meta.url));
const RESULTS = fileURLToPath(new URL('./results/login-rate.json', import.meta.url));

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? Number(process.argv[i + 1]) : Number(process.env[`LOGIN_RATE_${name.toUpperCase()}`] ?? fallback);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name}: expected a positive integer`);
  return value;
}

const SESSIONS = flag('sessions', 1000);
const CONCURRENCY = flag('concurrency', 32);

interface Phase {
  name: string;
  sessions: number;
  failures: number;
  seconds: number;
  perSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return Number(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!.toFixed(2));
}

/** Runs `count` jobs, `concurrency` at a time; returns rate and latency. */
async function phase(name: string, count: number, job: (i: number) => Promise<boolean>): Promise<Phase> {
  const latencies: number[] = [];
  let failures = 0;
  let next = 0;
  const started = performance.now();
  let lastShown = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, count) }, async () => {
      while (next < count) {
        const i = next++;
        const t = performance.now();
        const ok = await job(i).catch(() => false);
        latencies.push(performance.now() - t);
        if (!ok) failures++;
        if (process.stderr.isTTY && performance.now() - lastShown > 1000) {
          lastShown = performance.now();
          process.stderr.write(`\r${name}: ${latencies.length}/${count}`);
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  process.stderr.write(`${process.stderr.isTTY ? '\r' : ''}${name}: ${count}/${count} in ${seconds.toFixed(2)} s\n`);
  latencies.sort((a, b) => a - b);
  return {
    name,
    sessions: count,
    failures,
    seconds: Number(seconds.toFixed(3)),
    perSecond: Number((count / seconds).toFixed(1)),
    latencyMs: { p50: percentile(latencies, 50), p90: percentile(latencies, 90), p99: percentile(latencies, 99), max: percentile(latencies, 100) },
  };
}

/** One FTP control session: sends each line after the previous reply, checks reply codes. */
function ftpSession(port: number, steps: [string | null, number][]): Promise<boolean> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ port, host: '127.0.0.1' });
    let buffer = '';
    let step = 0;
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(30_000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('close', () => resolve(false));
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      buffer += text;
      let end: number;
      while ((end = buffer.indexOf('\r\n')) !== -1) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (line[3] === '-') continue; // continuation of a multi-line reply
        const code = Number(line.slice(0, 3));
        if (code !== steps[step]![1]) return done(false);
        step++;
        if (step === steps.length) return done(true);
        socket.write(`${steps[step]![0]}\r\n`);
      }
    });
  });
}

const login = (port: number, user: string, password: string): Promise<boolean> =>
  ftpSession(port, [[null, 220], [`USER ${user}`, 331], [`PASS ${password}`, 230], ['QUIT', 221]]);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function startServer(dataDir: string, usersFile: string, port: number): Promise<ChildProcess> {
  const child = spawn(LAUNCHER_ENV, [process.execPath, BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--users', usersFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('listening on')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`dropftp serve exited (${code}) before listening`)));
  });
  return child;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'dropftp-login-rate-'));
  const usersFile = join(work, 'users.yaml');
  let server: ChildProcess | null = null;
  try {
    process.stderr.write(`hashing ${SESSIONS} passwords…\n`);
    const users: Record<string, UserRecord> = {};
    const passwords: string[] = [];
    await phase('hash (setup)', SESSIONS, async (i) => {
      passwords[i] = `pw-${i}-${Math.random().toString(36).slice(2)}`;
      users[`user${i}`] = { password: await hashPassword(passwords[i]!), account: 'local', root: '/' };
      return true;
    });
    const warmPassword = 'warm-up-password';
    await writeUsersFile(usersFile, { users: { ...users, warmup: { password: await hashPassword(warmPassword), account: 'local', root: '/' } } });

    const port = await freePort();
    server = await startServer(join(work, 'data'), usersFile, port);
    const serverEnv = (await readFile(`/proc/${server.pid}/environ`, 'utf8').catch(() => '')).split('\0');
    const serverPool = Number(serverEnv.find((e) => e.startsWith('UV_THREADPOOL_SIZE='))?.split('=')[1] ?? 4);
    const noLoginSession = (): Promise<boolean> => ftpSession(port, [[null, 220], ['QUIT', 221]]);
    // Warm-up (JIT, first listings): the first few hundred sessions of a fresh process run several
    // times slower than the rest, which would make whichever phase comes first look bad.
    await phase('warm-up: no login (not reported)', 2000, noLoginSession);
    await phase('warm-up: logins of another user (not reported)', 1000, () => login(port, 'warmup', warmPassword));
    // Baseline 2: sessions that never log in (TCP + greeting + QUIT).
    const noLogin = await phase('baseline: connect + QUIT, no login', SESSIONS, noLoginSession);
    // Baseline 1: raw scrypt verifications in this process at the same concurrency (libuv pool),
    // measured right before and right after the cold phase: the machine is shared, its load drifts.
    const rawCount = Math.min(SESSIONS, 150);
    const scryptBefore = await phase('baseline: raw scrypt verify, in-process (before)', rawCount, async (i) => verifyPassword(passwords[i]!, users[`user${i}`]!.password));
    const distinct = await phase('distinct credentials (cold: one scrypt per login)', SESSIONS, (i) => login(port, `user${i}`, passwords[i]!));
    const scryptAfter = await phase('baseline: raw scrypt verify, in-process (after)', rawCount, async (i) => verifyPassword(passwords[i]!, users[`user${i}`]!.password));
    const repeated = await phase('repeated credentials (one user, cache hits)', SESSIONS, () => login(port, 'user0', passwords[0]!));
    const distinctWarm = await phase('distinct credentials again (warm: all cached)', SESSIONS, (i) => login(port, `user${i}`, passwords[i]!));
    const scrypt = { perSecond: Number(((scryptBefore.perSecond + scryptAfter.perSecond) / 2).toFixed(1)) };

    const result = {
      benchmark: 'login-rate',
      date: new Date().toISOString(),
      machine: { cpus: availableParallelism(), loadavg1m: Number(loadavg()[0]!.toFixed(2)), node: process.version, uvThreadpoolSize: Number(process.env.UV_THREADPOOL_SIZE ?? 4), serverUvThreadpoolSize: serverPool },
      // The bench process's own gate (same formula as the server's: pool - 1 running, 256 MiB).
      scryptGate: { maxRunning: scryptGate.maxRunning, maxBytes: scryptGate.maxBytes, peakRunningInProcess: scryptGate.peakRunning },
      scrypt: { N: 16384, r: 8, p: 1 },
      concurrency: CONCURRENCY,
      phases: [noLogin, scryptBefore, distinct, scryptAfter, repeated, distinctWarm],
      summary: {
        rawScryptPerSecond: scrypt.perSecond,
        loadavg1mAtEnd: Number(loadavg()[0]!.toFixed(2)),
        noLoginSessionsPerSecond: noLogin.perSecond,
        distinctLoginsPerSecond: distinct.perSecond,
        repeatedLoginsPerSecond: repeated.perSecond,
        distinctWarmLoginsPerSecond: distinctWarm.perSecond,
        distinctVsRawScrypt: Number((distinct.perSecond / scrypt.perSecond).toFixed(2)),
        repeatedVsDistinct: Number((repeated.perSecond / distinct.perSecond).toFixed(1)),
        repeatedVsNoLogin: Number((repeated.perSecond / noLogin.perSecond).toFixed(2)),
      },
    };
    await mkdir(join(RESULTS, '..'), { recursive: true });
    await writeFile(RESULTS, JSON.stringify(result, null, 2) + '\n');
    process.stdout.write(JSON.stringify(result.summary, null, 2) + '\n');
    for (const p of result.phases) if (p.failures > 0) process.stderr.write(`warning: ${p.name}: ${p.failures} failures\n`);
  } finally {
    if (server) {
      server.kill('SIGTERM');
      await new Promise((resolve) => server!.once('exit', resolve));
    }
    await rm(work, { recursive: true, force: true });
  }
}

await main();
