// The upload spool folder (<dataDir>/spool, or a private temp folder): created with mode 0700, swept
// of every spool file at engine start (a killed gateway leaves its files behind) and of a dead
// worker's files when main reclaims its slot. Main thread. Invariants: only files named like the
// workers name them (<threadKey>-<taskId>-<n>.spool, workers/retention.ts) are ever removed; the
// folder itself is removed only when the engine made it.

import { mkdir, mkdtemp, readdir, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SPOOL_FILE = /^(\d+)-\d+-\d+\.spool$/;

export interface SpoolDir {
  readonly path: string;
  /** Removes the spool files of the thread with this key (it died); resolves the count. */
  sweepThread(threadKey: number): Promise<number>;
  /** Removes the folder when the engine made it (a private temp folder); else leaves it. */
  close(): Promise<void>;
}

/** Opens (creating it) and sweeps the spool folder; `path` null: a private one under the OS temp dir. */
export async function openSpoolDir(path: string | null): Promise<{ dir: SpoolDir; swept: number }> {
  const own = path === null;
  const dir = own ? await mkdtemp(join(tmpdir(), 'dropftp-spool-')) : path;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const swept = await sweep(dir, () => true);
  return {
    swept,
    dir: {
      path: dir,
      sweepThread: (threadKey) => sweep(dir, (key) => key === threadKey),
      close: async () => {
        if (own) await rm(dir, { recursive: true, force: true }).catch(() => {});
      },
    },
  };
}

async function sweep(dir: string, match: (threadKey: number) => boolean): Promise<number> {
  let removed = 0;
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const m = SPOOL_FILE.exec(name);
    if (!m || !match(Number(m[1]))) continue;
    await unlink(join(dir, name)).then(
      () => removed++,
      () => {},
    );
  }
  return removed;
}
