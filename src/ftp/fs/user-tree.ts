// A user's tree: its root folder of one account, plus mounts (folders of any account shown at
// fixed client paths). Maps a jailed client path to the account and Dropbox path that hold it, and
// says what may be done there. Main thread, one per session. Invariants: a mount shadows whatever
// its root folder holds at the mount path; the Dropbox path of a place always lies inside the root
// folder or inside a mount's folder (client paths are normalised and '..'-free, paths.ts); a
// read-only mount grants list and read only, whatever the user's own permissions.

import { DropftpError } from '../../errors.ts';
import { restrictToReadOnly, type Permission, type PermissionSet } from '../../users/permissions.ts';
import type { Mount } from '../../users/mounts.ts';
import type { AccountStore } from './account-store.ts';
import { isWithin, toDropboxPath } from './paths.ts';

export interface Place {
  store: AccountStore;
  /** Dropbox path in `store`'s account ('' = that account's root). */
  dbx: string;
  permissions: PermissionSet;
  /** The mount this place is in, or null for the user's root folder. */
  mount: Mount | null;
  /** True for a mount's own path (its folder's top). */
  isMountPoint: boolean;
}

export interface UserTreeOptions {
  root: string;
  rootStore: AccountStore;
  permissions: PermissionSet;
  mounts: readonly { mount: Mount; store: AccountStore }[];
}

export class UserTree {
  readonly root: string;
  readonly rootStore: AccountStore;
  readonly permissions: PermissionSet;
  readonly mounts: readonly { mount: Mount; store: AccountStore; permissions: PermissionSet }[];

  constructor(options: UserTreeOptions) {
    this.root = options.root;
    this.rootStore = options.rootStore;
    this.permissions = options.permissions;
    this.mounts = options.mounts.map((m) => ({ ...m, permissions: m.mount.readOnly ? restrictToReadOnly(options.permissions) : options.permissions }));
  }

  place(clientPath: string): Place {
    for (const { mount, store, permissions } of this.mounts) {
      if (!isWithin(clientPath, mount.path)) continue;
      const rest = clientPath.slice(mount.path.length);
      return { store, dbx: toDropboxPath(mount.folder, rest === '' ? '/' : rest), permissions, mount, isMountPoint: rest === '' };
    }
    return { store: this.rootStore, dbx: toDropboxPath(this.root, clientPath), permissions: this.permissions, mount: null, isMountPoint: false };
  }

  /**
   * Throws DROPFTP_ERR_PERMISSION unless `permission` is granted at `clientPath`; a mount point, or
   * a folder holding one, can never be renamed or deleted (the mount would dangle).
   */
  check(permission: Permission, clientPath: string): Place {
    const place = this.place(clientPath);
    if (!place.permissions.has(permission)) throw new DropftpError('DROPFTP_ERR_PERMISSION', `${permission} refused at ${clientPath}`);
    if ((permission === 'rename' || permission === 'delete') && (place.isMountPoint || this.holdsMount(clientPath))) {
      throw new DropftpError('DROPFTP_ERR_PERMISSION', `${clientPath} is or holds a mount point`);
    }
    return place;
  }

  /** What check() grants at `clientPath`, without throwing (listings ask it once per entry). */
  permissionsAt(clientPath: string): PermissionSet {
    const place = this.place(clientPath);
    if (!place.isMountPoint && !((place.permissions.has('delete') || place.permissions.has('rename')) && this.holdsMount(clientPath))) return place.permissions;
    return new Set([...place.permissions].filter((p) => p !== 'delete' && p !== 'rename'));
  }

  /** True when a mount lies strictly below `clientPath` (the folder holds a mount point). */
  holdsMount(clientPath: string): boolean {
    return this.mounts.some(({ mount }) => mount.path.toLowerCase() !== clientPath.toLowerCase() && isWithin(mount.path, clientPath));
  }

  /**
   * Folders that mounts add directly inside `clientPath`: mount points themselves, and the first
   * component of deeper mounts (/deep for /deep/nested/share), which exist only virtually.
   */
  mountNamesIn(clientPath: string): { name: string; isMountPoint: boolean }[] {
    const out = new Map<string, { name: string; isMountPoint: boolean }>();
    const prefix = clientPath === '/' ? '/' : clientPath + '/';
    for (const { mount } of this.mounts) {
      if (!mount.path.toLowerCase().startsWith(prefix.toLowerCase())) continue;
      const rest = mount.path.slice(prefix.length);
      const name = rest.split('/')[0]!;
      const isMountPoint = !rest.includes('/');
      if (!out.get(name.toLowerCase())?.isMountPoint) out.set(name.toLowerCase(), { name, isMountPoint });
    }
    return [...out.values()];
  }

  /** Every folder that must exist for the tree to work: the root, and writable mounts' folders. */
  foldersToEnsure(): { store: AccountStore; dbx: string }[] {
    const out = [{ store: this.rootStore, dbx: this.root }];
    for (const { mount, store } of this.mounts) if (!mount.readOnly) out.push({ store, dbx: mount.folder });
    return out;
  }
}
