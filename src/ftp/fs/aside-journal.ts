// What an FTP operation has moved aside, under a hidden .dropftp-rename- name, and must put back if
// it does not finish: RNTO over a file (the old file), a case-only rename (the source), RMD (the
// folder). Kept in <dataDir>/asides.json from just before the move aside until the operation has
// settled, so that a gateway killed in between puts the entry back at its next start
// (AccountStore.replayAsides) instead of leaving it where no FTP client can reach it. Main thread.
// Invariants: an entry is on disk (written to a temporary file, then renamed over the journal)
// before its move aside starts, and a failure to write it fails the operation before anything
// moved; writes are serialised and each writes the whole current set; entries are per account.

import { readFile, rename, writeFile } from 'node:fs/promises';

export interface AsideEntry {
  account: string;
  /** Where the entry was moved to (a hidden name in the same folder). */
  aside: string;
  /** Where it belongs if the operation does not finish. */
  path: string;
  tag: 'file' | 'folder';
}

function isEntry(value: unknown): value is AsideEntry {
  const e = value as Partial<AsideEntry> | null;
  return (
    e !== null &&
    typeof e === 'object' &&
    typeof e.account === 'string' &&
    typeof e.aside === 'string' &&
    typeof e.path === 'string' &&
    e.path.startsWith('/') &&
    e.aside.startsWith('/') &&
    (e.tag === 'file' || e.tag === 'folder')
  );
}

export class AsideJournal {
  readonly file: string;
  readonly #entries = new Map<string, AsideEntry>();
  #writing: Promise<void> = Promise.resolve();

  private constructor(file: string) {
    this.file = file;
  }

  /** Reads the journal a previous run left (none: empty). A damaged file is reported through `warn` and read as empty. */
  static async open(file: string, warn: (message: string) => void = () => {}): Promise<AsideJournal> {
    const journal = new AsideJournal(file);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') warn(`${file}: cannot be read (${(err as Error).message}); nothing to put back from it`);
      return journal;
    }
    try {
      const list: unknown = JSON.parse(text);
      if (!Array.isArray(list)) throw new Error('not a list');
      for (const e of list) {
        if (isEntry(e)) journal.#entries.set(AsideJournal.#key(e), e);
        else warn(`${file}: an entry that is not {account, aside, path, tag} left out`);
      }
    } catch (err) {
      warn(`${file}: unreadable (${(err as Error).message}); nothing to put back from it`);
    }
    return journal;
  }

  static #key(e: AsideEntry): string {
    return `${e.account}\0${e.aside.toLowerCase()}`;
  }

  /** Entries of one account a previous run did not settle. */
  pending(account: string): AsideEntry[] {
    return [...this.#entries.values()].filter((e) => e.account === account);
  }

  /** On disk before it resolves: call before the move aside. */
  record(entry: AsideEntry): Promise<void> {
    this.#entries.set(AsideJournal.#key(entry), entry);
    return this.#persist();
  }

  /** The operation settled (finished, or put the entry back). */
  settle(entry: AsideEntry): Promise<void> {
    if (!this.#entries.delete(AsideJournal.#key(entry))) return Promise.resolve();
    return this.#persist();
  }

  #persist(): Promise<void> {
    const run = this.#writing.then(async () => {
      const tmp = `${this.file}.tmp`;
      await writeFile(tmp, `${JSON.stringify([...this.#entries.values()], null, 1)}\n`, { mode: 0o600 });
      await rename(tmp, this.file);
    });
    this.#writing = run.catch(() => {});
    return run;
  }
}
