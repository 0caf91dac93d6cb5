// Server-side resource sampling from /proc: RSS of the server's main process, PSS summed over its
// process tree (fair to forking servers such as vsftpd), and CPU seconds of the tree. Runs on the
// coordinator's main thread. Invariants: a vanished process reads as absent, never throws; the tree
// is rescanned on each sample (servers fork and reap sessions).

import { readFileSync, readdirSync } from 'node:fs';
import { nowMs } from './meter.ts';

const CLOCK_TICKS = 100; // USER_HZ on Linux

export function readRssBytes(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

function readPssBytes(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * The fields of a /proc stat file after the command name, which may hold spaces and parentheses
 * (index 0 is the state, 1 the parent pid, 7 minflt, 11-14 utime, stime, cutime, cstime); null when
 * the process or thread is gone.
 */
function statFields(path: string): string[] | null {
  try {
    const stat = readFileSync(path, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** utime + stime of one process plus cutime + cstime of its reaped children, in seconds. */
function readCpuSeconds(pid: number): number {
  const f = statFields(`/proc/${pid}/stat`);
  return f ? (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLOCK_TICKS : 0;
}

/** utime + stime of one process (all its threads, not its children), or of one of its threads (`tid`), in seconds; NaN when gone. */
export function readOwnCpuSeconds(pid: number, tid?: number): number {
  const f = statFields(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`);
  return f ? (Number(f[11]) + Number(f[12])) / CLOCK_TICKS : NaN;
}

/**
 * Minor page faults of one process (all its threads), NaN when gone: memory touched for the first
 * time (or again after it was given back). On the VMs we measure on each costs ~16 µs of the
 * faulting thread's CPU (a loop touching 1 GiB of fresh pages: 4.3 CPU-s), so a short run's growth
 * to its peak memory is a visible part of its CPU-s/GiB.
 */
export function readMinorFaults(pid: number): number {
  const f = statFields(`/proc/${pid}/stat`);
  return f ? Number(f[7]) : NaN;
}

/** `pid` and all its descendants. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(`/proc/${name}/stat`);
    if (!f) continue; // exited while scanning
    const ppid = Number(f[1]);
    const list = children.get(ppid);
    if (list) list.push(Number(name));
    else children.set(ppid, [Number(name)]);
  }
  const out: number[] = [];
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

export interface ResourceSample {
  /** Absolute ms. */
  tMs: number;
  rssBytes: number | null;
  treePssBytes: number;
  treeProcesses: number;
  treeCpuSeconds: number;
}

export function sampleResources(pid: number): ResourceSample {
  const tree = processTree(pid);
  let pss = 0;
  let cpu = 0;
  for (const p of tree) {
    pss += readPssBytes(p);
    cpu += readCpuSeconds(p);
  }
  return { tMs: nowMs(), rssBytes: readRssBytes(pid), treePssBytes: pss, treeProcesses: tree.length, treeCpuSeconds: cpu };
}

/** Samples `pid`'s resources every `everyMs` until stop(). */
export class ResourceSampler {
  readonly samples: ResourceSample[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly pid: number,
    everyMs: number,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  sample(): ResourceSample {
    const s = sampleResources(this.pid);
    this.samples.push(s);
    return s;
  }

  get last(): ResourceSample {
    return this.samples[this.samples.length - 1]!;
  }

  stop(): ResourceSample[] {
    clearInterval(this.timer);
    this.sample();
    return this.samples;
  }
}
