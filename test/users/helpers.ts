// The whole service (startDropftp, as `dropftp serve` runs it) with a users file written by the
// test, plus an SDK client per storage account for "changes made elsewhere" and for checking what
// the store holds, over the local box's own HTTP API. Test code only.

import { Dropbox } from 'dropbox';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDropftp, type Dropftp } from '../../src/server.ts';
import { hashPassword } from '../../src/users/password.ts';
import { writeUsersFile, type UserRecord } from '../../src/users/users-file.ts';

export type TestUser = Omit<UserRecord, 'password' | 'account' | 'root'> & { password: string; account?: string; root?: string };

export interface UsersStack {
  service: Dropftp;
  port: number;
  dataDir: string;
  usersFile: string;
  /** An SDK client of `account` talking to the local box directly (not through FTP). */
  sdk(account: string): Promise<Dropbox>;
  stop(): Promise<void>;
}

export async function writeUsers(path: string, users: Record<string, TestUser>): Promise<void> {
  const records: Record<string, UserRecord> = {};
  for (const [name, u] of Object.entries(users)) {
    records[name] = { ...u, password: await hashPassword(u.password), account: u.account ?? 'local', root: u.root ?? '/' };
  }
  await writeUsersFile(path, { users: records });
}

export async function startUsersStack(users: Record<string, TestUser>): Promise<UsersStack> {
  const dataDir = await mkdtemp(join(tmpdir(), 'dropftp-users-test-'));
  const usersFile = join(dataDir, 'users.yaml');
  await writeUsers(usersFile, users);
  const service = await startDropftp({ dataDir, host: '127.0.0.1', port: 0, engineWorkers: 1, usersFile });
  const sdks = new Map<string, Dropbox>();
  return {
    service,
    port: service.port,
    dataDir,
    usersFile,
    async sdk(account) {
      let sdk = sdks.get(account);
      if (!sdk) {
        const accessToken = await service.accounts.accessToken(account);
        const url = service.box.url;
        sdk = new Dropbox({ accessToken, fetch: (u: string, init: RequestInit) => fetch(u.replace(/^https:\/\/[^/]+/, url), init) } as ConstructorParameters<typeof Dropbox>[0]);
        sdks.set(account, sdk);
      }
      return sdk;
    },
    async stop() {
      await service.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Every path in the account with its rev (files) — a fingerprint of what the store holds. */
export async function storeTree(sdk: Dropbox): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let res = await sdk.filesListFolder({ path: '', recursive: true, limit: 2000 });
  for (;;) {
    for (const e of res.result.entries as unknown as { '.tag': string; path_lower: string; rev?: string }[]) {
      out.set(e.path_lower, e['.tag'] === 'file' ? `file ${e.rev}` : e['.tag']);
    }
    if (!res.result.has_more) return out;
    res = await sdk.filesListFolderContinue({ cursor: res.result.cursor });
  }
}

export async function putFile(sdk: Dropbox, path: string, text: string): Promise<void> {
  await sdk.filesUpload({ path, contents: Buffer.from(text), mode: { '.tag': 'overwrite' } });
}

export async function readFileText(sdk: Dropbox, path: string): Promise<string> {
  const res = await sdk.filesDownload({ path });
  const blob = (res.result as unknown as { fileBinary?: Buffer; fileBlob?: Blob }).fileBinary;
  if (blob) return Buffer.from(blob).toString('utf8');
  const b = (res.result as unknown as { fileBlob: Blob }).fileBlob;
  return Buffer.from(await b.arrayBuffer()).toString('utf8');
}
