// Process helpers for tests that kill real dropftp processes: the child processes of a pid (from
// /proc, every thread's children) and whether a pid still exists. Test code only; Linux (/proc).

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
