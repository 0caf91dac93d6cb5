// The users a running server knows: the users file, re-read when it changes (so `dropftp user
// add|remove|passwd` take effect at the next login, no restart), and the login check. Main thread;
// the scrypt work runs on libuv's thread pool (password.ts), never on the event loop. Invariants:
// an unknown user costs the same scrypt as a known one (no user enumeration by timing); a users
// file that fails validation is reported and the previous good one stays in force; the file is
// stat'ed at most once per `recheckMs`, so a login storm costs no disk reads.

import { stat } from 'node:fs/promises';
import { DropftpError } from '../errors.ts';
import { LoginCache } from './password.ts';
import { readUsersFile, resolveUser, type UserConfig } from './users-file.ts';

export interface UserDirectoryOptions {
  path: string;
  /** How often the file's mtime is looked at (default 1,000 ms). */
  recheckMs?: number;
  loginCache?: LoginCache;
  /** A changed users file that failed validation (the old one stays in force). */
  onError?: (err: Error) => void;
}

// Well-formed but matching no password: unknown users still pay one scrypt.
const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

export class UserDirectory {
  readonly path: string;
  readonly logins: LoginCache;
  readonly #recheckMs: number;
  readonly #onError: (err: Error) => void;
  #users = new Map<string, UserConfig>();
  #version = '';
  #checkedAtMs = 0;
  #checking: Promise<void> | null = null;

  private constructor(options: UserDirectoryOptions) {
    this.path = options.path;
    this.logins = options.loginCache ?? new LoginCache();
    this.#recheckMs = options.recheckMs ?? 1000;
    this.#onError = options.onError ?? (() => {});
  }

  /** Reads the file once (errors throw: a bad users file stops start-up, naming the option). */
  static async open(options: UserDirectoryOptions): Promise<UserDirectory> {
    const directory = new UserDirectory(options);
    await directory.#load(await directory.#fileVersion());
    return directory;
  }

  get users(): ReadonlyMap<string, UserConfig> {
    return this.#users;
  }

  /** Re-reads the file now (SIGHUP); a bad file throws and the users in force stay. */
  async reload(): Promise<{ users: number }> {
    await this.#load(await this.#fileVersion());
    return { users: this.#users.size };
  }

  /** Checks the password; resolves to the user's configuration or throws DROPFTP_ERR_LOGIN_FAILED. */
  async authenticate(username: string, password: string): Promise<UserConfig> {
    await this.#maybeReload();
    const user = this.#users.get(username);
    const ok = await this.logins.verify(username, password, user?.passwordHash ?? DUMMY_HASH);
    if (!user || !ok) throw new DropftpError('DROPFTP_ERR_LOGIN_FAILED');
    return user;
  }

  async #fileVersion(): Promise<string> {
    try {
      const s = await stat(this.path);
      return `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
      throw err;
    }
  }

  async #load(version: string): Promise<void> {
    const file = await readUsersFile(this.path);
    const users = new Map<string, UserConfig>();
    for (const [name, record] of Object.entries(file.users)) users.set(name, resolveUser(name, record, this.path));
    this.#users = users;
    this.#version = version;
  }

  #maybeReload(): Promise<void> {
    const now = Date.now();
    if (now - this.#checkedAtMs < this.#recheckMs) return Promise.resolve();
    this.#checkedAtMs = now;
    this.#checking ??= (async () => {
      try {
        const version = await this.#fileVersion();
        if (version !== this.#version) await this.#load(version);
      } catch (err) {
        this.#onError(err instanceof Error ? err : new Error(String(err)));
      } finally {
        this.#checking = null;
      }
    })();
    return this.#checking;
  }
}
