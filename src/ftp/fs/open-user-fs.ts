// From a logged-in user's configuration to its session: the file system over its tree (root
// folder + mounts, each on its account's shared store) and the verbs its permissions refuse at the
// command gate. Main thread, once per login. Invariants: the root folder and writable mount folders
// exist before the session starts (created on first login); the returned blacklist names canonical
// verbs, which the connection matches against every alias (XMKD, XRMD) and write-alike (APPE, STOU).

import { deniedVerbs } from '../../users/permissions.ts';
import type { UserConfig } from '../../users/users-file.ts';
import type { AccountRegistry } from './account-registry.ts';
import { DropboxFs } from './dropbox-fs.ts';
import type { ResumeStore } from './resume-store.ts';
import type { TransferAdapter } from './transfer-adapter.ts';
import { UserTree } from './user-tree.ts';

export async function openUserFs(
  user: UserConfig,
  accounts: AccountRegistry,
  transfers: TransferAdapter,
  resumes: ResumeStore,
): Promise<{ fs: DropboxFs; blacklist: string[] }> {
  const rootStore = await accounts.get(user.account);
  const mounts = await Promise.all(user.mounts.map(async (mount) => ({ mount, store: await accounts.get(mount.account) })));
  const tree = new UserTree({ root: user.root, rootStore, permissions: user.permissions, mounts });
  const fs = new DropboxFs({ tree, transfers, user: user.name, resumes });
  await fs.prepare();
  // Verbs refused everywhere: a permission the user lacks in its whole tree. A mount that is
  // read-only refuses the rest per path, in the file system.
  return { fs, blacklist: [...deniedVerbs(user.permissions), ...user.deny] };
}
