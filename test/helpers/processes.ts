// Process helpers for tests of real dropftp processes: the child processes of a pid (from /proc,
// every thread's children), whether a pid still exists, and the GLIBC_TUNABLES it started with.
// Test code only; Linux (/proc).

import { readdirSync, readFileSync } from 'node:fs';

/** The child processes of `pid` (a dropftp process's only one is its local box). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    out.push(...readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
  }
  return out;
}

/** The pid exists (a zombie not yet reaped counts as alive). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The GLIBC_TUNABLES a running process started with, as `GLIBC_TUNABLES=a:b`, or 'no GLIBC_TUNABLES'.
 * glibc parses the variable in place, its ':' becoming NULs in the memory /proc/PID/environ shows.
 */
export function glibcTunablesOf(pid: number): string {
  const environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
  return /GLIBC_TUNABLES=[^\0]*(?:\0glibc\.[^\0]*)*/.exec(environ)?.[0].replaceAll('\0', ':') ?? 'no GLIBC_TUNABLES';
}
