// Wiring of `dropftp serve`: the embedded local box (a child process), the transfer engine, the
// users file and the FTP server, started in that order and closed in reverse. Main thread.
// Invariants: the first run creates a local box account (kept in <dataDir>/accounts.yaml) and, when
// the users file holds no user, one FTP user whose password is returned once and never stored in
// clear; access tokens are refreshed at start; close() stops accepting, lets nothing half-uploaded
// commit, then stops the engine and the box.

import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { DropftpError } from './errors.ts';
import { DropboxRpc, closeSharedAgent } from './dropbox/rpc.ts';
import { DropboxFs } from './ftp/fs/dropbox-fs.ts';
import { ResumeStore } from './ftp/fs/resume-store.ts';
import type { TransferAdapter } from './ftp/fs/transfer-adapter.ts';
import { FtpServer, type Authenticator, type SessionLimits } from './ftp/server.ts';
import type { PortRange } from './ftp/data/passive-ports.ts';
import { startLocalBox, type LocalBox, type LocalBoxAccount } from './localbox/index.ts';
import { TransferEngine, type UploadResumeToken } from './transfer/index.ts';
import { LoginCache, hashPassword } from './users/password.ts';
import { readUsersFile, writeUsersFile, type UserRecord } from './users/users-file.ts';

export interface DropftpOptions {
  dataDir: string;
  host?: string;
  port?: number;
  pasvPorts?: PortRange | null;
  publicHost?: string | null;
  /** Default <dataDir>/users.yaml. */
  usersFile?: string;
  engineWorkers?: number;
  limits?: Partial<SessionLimits>;
}

export interface Dropftp {
  ftp: FtpServer;
  box: LocalBox;
  engine: TransferEngine;
  host: string;
  port: number;
  /** Set on the run that created the first user: its name and clear password (shown once). */
  createdUser: { name: string; password: string } | null;
  /** The login check the FTP server uses (tests build extra servers with other limits on it). */
  authenticate: Authenticator;
  close(): Promise<void>;
}

const LOCAL_ACCOUNT = 'local';

type StoredAccount = Omit<LocalBoxAccount, 'accessToken'>;

async function localAccount(box: LocalBox, dataDir: string): Promise<{ name: string; accessToken: string }> {
  const path = join(dataDir, 'accounts.yaml');
  let stored: Record<string, StoredAccount> = {};
  try {
    stored = (parse(await readFile(path, 'utf8')) ?? {}) as Record<string, StoredAccount>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new DropftpError('DROPFTP_ERR_CONFIG', `${path}: ${(err as Error).message}`);
  }
  let account = stored[LOCAL_ACCOUNT];
  if (!account) {
    const created = await box.createAccount(LOCAL_ACCOUNT);
    account = { name: created.name, accountId: created.accountId, refreshToken: created.refreshToken, appKey: created.appKey, appSecret: created.appSecret };
    stored[LOCAL_ACCOUNT] = account;
    await writeFile(path, '# local box accounts of this data directory (refresh tokens: keep private)\n' + stringify(stored), { mode: 0o600 });
  }
  // Short-lived access tokens: always start from a fresh one (OAuth2 refresh grant).
  const res = await fetch(`${box.url}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: account.refreshToken, client_id: account.appKey, client_secret: account.appSecret }),
  });
  if (!res.ok) throw new DropftpError('DROPFTP_ERR_UPSTREAM_AUTH', `local box refused the stored refresh token (HTTP ${res.status})`);
  const body = (await res.json()) as { access_token?: string };
  if (!body.access_token) throw new DropftpError('DROPFTP_ERR_UPSTREAM_AUTH', 'local box token response without access_token');
  return { name: LOCAL_ACCOUNT, accessToken: body.access_token };
}

async function ensureFirstUser(usersFile: string): Promise<{ name: string; password: string } | null> {
  const file = await readUsersFile(usersFile);
  if (Object.keys(file.users).length > 0) return null;
  const password = randomBytes(12).toString('base64url');
  file.users['ftp'] = { password: await hashPassword(password), account: LOCAL_ACCOUNT, root: '/' };
  await writeUsersFile(usersFile, file);
  return { name: 'ftp', password };
}

export async function startDropftp(options: DropftpOptions): Promise<Dropftp> {
  const dataDir = options.dataDir;
  await mkdir(dataDir, { recursive: true });
  const usersFile = options.usersFile ?? join(dataDir, 'users.yaml');
  const createdUser = await ensureFirstUser(usersFile);
  const users = (await readUsersFile(usersFile)).users;

  const box = await startLocalBox({ dataDir: join(dataDir, 'localbox') });
  let engine: TransferEngine | null = null;
  try {
    const account = await localAccount(box, dataDir);
    engine = await TransferEngine.start(options.engineWorkers ? { workers: options.engineWorkers } : {});
    engine.setAccount({ name: account.name, apiUrl: box.url, contentUrl: box.url, accessToken: account.accessToken });
    const rpcs = new Map([[account.name, new DropboxRpc({ name: account.name, apiUrl: box.url, accessToken: account.accessToken })]]);
    const running = engine;
    // Resume tokens pass through the FTP layer untouched (opaque but for their offset).
    const transfers: TransferAdapter = {
      openDownload: (name, path, o) => running.openDownload(name, path, o),
      openUpload: (name, path, o) => running.openUpload(name, path, { ...o, resume: o.resume as UploadResumeToken | undefined }),
    };
    const logins = new LoginCache();
    const resumes = new ResumeStore();
    const authenticate: Authenticator = async ({ username, password }) => {
        const user: UserRecord | undefined = Object.hasOwn(users, username) ? users[username] : undefined;
        // Unknown users cost the same scrypt as known ones (no user enumeration by timing).
        const ok = await logins.verify(username, password, user?.password ?? DUMMY_HASH);
        if (!user || !ok) throw new DropftpError('DROPFTP_ERR_LOGIN_FAILED');
        const rpc = rpcs.get(user.account);
        if (!rpc) throw new DropftpError('DROPFTP_ERR_CONFIG', `user ${username}: unknown account ${user.account}`);
        return {
          fs: new DropboxFs({ rpc, transfers, account: user.account, user: username, root: user.root, resumes }),
          blacklist: user.deny ?? [],
        };
    };
    const ftp = new FtpServer({
      host: options.host ?? '0.0.0.0',
      port: options.port ?? 2121,
      pasvPorts: options.pasvPorts ?? null,
      publicHost: options.publicHost ?? null,
      ...options.limits,
      authenticate,
    });
    const address = await ftp.listen();
    const started = engine;
    return {
      ftp,
      box,
      engine: started,
      host: address.address,
      port: address.port,
      createdUser,
      authenticate,
      close: async () => {
        await ftp.close();
        await started.close();
        await closeSharedAgent();
        await box.close();
      },
    };
  } catch (err) {
    await engine?.destroy().catch(() => {});
    await box.close().catch(() => {});
    throw err;
  }
}

// Well-formed but matching no password: unknown users still pay one scrypt.
const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
