// One session's file system over its user's tree (user-tree.ts: a root folder plus mounts, possibly
// of other accounts): metadata through each account's store (directory cache + RPC), bytes through
// the transfer engine. Main thread. Invariants: every path is jailed (paths.ts) and every operation
// checks its permission at its own path (a read-only mount refuses writes whatever the verb);
// mount points can be neither removed, renamed nor overwritten, and nothing moves across accounts;
// RMD refuses a non-empty folder (delete_v2 is recursive) and deletes it only after moving it aside
// and finding it still empty, so no file committed meanwhile goes with it; DELE deletes only the version it looked
// at (parent_rev); case-only renames go through a temporary name (move_v2 refuses them); an
// interrupted TYPE I STOR commits nothing but its upload session is kept (resume-store.ts) for REST n +
// STOR or APPE by the same user (TYPE A neither keeps nor continues one); a committed upload shows in listings at once.

import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { DropftpError } from '../../errors.ts';
import type { DropboxEntry, DropboxRpc } from '../../dropbox/rpc.ts';
import { ALL_PERMISSIONS, type Permission } from '../../users/permissions.ts';
import { AccountStore, type CommittedFile } from './account-store.ts';
import { baseName, normalizeRoot, resolveClientPath } from './paths.ts';
import { PrefixedUpload } from './prefixed-upload.ts';
import { ResumeStore } from './resume-store.ts';
import type { EngineUpload, TransferAdapter } from './transfer-adapter.ts';
import type { FileInfo, SessionFs, UploadSink } from './types.ts';
import { UserTree, type Place } from './user-tree.ts';

export interface DropboxFsOptions {
  transfers: TransferAdapter;
  /** FTP user name: kept upload sessions belong to one user. */
  user: string;
  /** The user's tree (root folder, permissions, mounts). */
  tree?: UserTree;
  /** Without a tree: one account, all permissions. */
  rpc?: DropboxRpc;
  /** Without a tree: the engine's name for that account. */
  account?: string;
  /** Without a tree: the Dropbox folder that is the user's '/', e.g. '' or '/ftp/alice'. */
  root?: string;
  resumes?: ResumeStore;
}

const FOLDER_TIME = new Date(0);
const RENAME_TEMP = '.dropftp-rename-';

/** A hidden name, new each time, in the folder of Dropbox path `dbx` (where RMD and RNTO move things aside). */
function asideName(dbx: string): string {
  return `${dbx.slice(0, dbx.lastIndexOf('/'))}/${RENAME_TEMP}${randomBytes(6).toString('hex')}`;
}

function toInfo(entry: DropboxEntry, name = entry.name): FileInfo {
  return { name, isDirectory: entry.tag === 'folder', size: entry.size, mtime: entry.modified ?? FOLDER_TIME, id: entry.id };
}

function notFound(path: string): DropftpError {
  return new DropftpError('DROPFTP_ERR_NOT_FOUND', `${path}: not found`);
}

export class DropboxFs implements SessionFs {
  cwd = '/';
  readonly #tree: UserTree;
  readonly #transfers: TransferAdapter;
  readonly #user: string;
  readonly #resumes: ResumeStore;

  constructor(options: DropboxFsOptions) {
    this.#transfers = options.transfers;
    this.#user = options.user;
    this.#resumes = options.resumes ?? new ResumeStore();
    if (options.tree) this.#tree = options.tree;
    else {
      if (!options.rpc || !options.account) throw new TypeError('DropboxFs: give a tree, or rpc and account');
      const store = new AccountStore(options.account, options.rpc, null);
      this.#tree = new UserTree({ root: normalizeRoot(options.root ?? ''), rootStore: store, permissions: ALL_PERMISSIONS, mounts: [] });
    }
  }

  resolve(arg: string): string {
    return resolveClientPath(this.cwd, arg);
  }

  /** Throws DROPFTP_ERR_PERMISSION unless `permission` is granted at `path`. */
  check(permission: Permission, path: string): void {
    this.#tree.check(permission, path);
  }

  permissionsAt(path: string): ReadonlySet<Permission> {
    return this.#tree.permissionsAt(path);
  }

  /** Creates the root folder and writable mounts' folders when missing (first login of a user). */
  async prepare(): Promise<void> {
    await Promise.all(this.#tree.foldersToEnsure().map(({ store, dbx }) => store.ensureFolder(dbx)));
  }

  async stat(path: string): Promise<FileInfo> {
    const place = this.#tree.place(path);
    if (path === '/' || place.dbx === '') {
      if (place.dbx !== '') await this.#folderEntry(place, path); // the user's root must exist
      return { name: path === '/' ? '/' : baseName(path), isDirectory: true, size: 0, mtime: FOLDER_TIME, id: 'root' };
    }
    const entry = await place.store.stat(place.dbx);
    if (entry) return toInfo(entry, place.isMountPoint ? baseName(path) : entry.name);
    // A folder that exists only because a mount lies below it (mount /a/b/shared, no /a in the root).
    if (this.#tree.holdsMount(path)) return { name: baseName(path), isDirectory: true, size: 0, mtime: FOLDER_TIME, id: `virtual:${path.toLowerCase()}` };
    throw notFound(path);
  }

  async #folderEntry(place: Place, path: string): Promise<DropboxEntry> {
    const entry = await place.store.stat(place.dbx);
    if (!entry) throw notFound(path);
    if (entry.tag !== 'folder') throw new DropftpError('DROPFTP_ERR_NOT_A_FOLDER');
    return entry;
  }

  async list(path: string): Promise<FileInfo[]> {
    const place = this.#tree.check('list', path);
    const mounted = this.#tree.mountNamesIn(path);
    let entries: DropboxEntry[] = [];
    try {
      entries = await place.store.list(place.dbx);
    } catch (err) {
      if (!(err instanceof DropftpError && err.code === 'DROPFTP_ERR_NOT_FOUND' && this.#tree.holdsMount(path))) throw err;
    }
    // Mount points shadow whatever the folder holds under their name; virtual parents of deeper
    // mounts show only when the folder holds nothing of that name.
    const shadowed = new Set(mounted.filter((m) => m.isMountPoint).map((m) => m.name.toLowerCase()));
    // A name with CR or LF (Dropbox allows them; FTP paths cannot hold them, 553) would break every
    // line of a listing into phantom entries: such entries are left out, as the hidden ones are.
    const infos = entries.filter((e) => !shadowed.has(e.name.toLowerCase()) && !e.name.startsWith(RENAME_TEMP) && !/[\r\n]/.test(e.name)).map((e) => toInfo(e));
    const present = new Set(infos.map((i) => i.name.toLowerCase()));
    for (const { name } of mounted) {
      if (present.has(name.toLowerCase())) continue;
      const child = path === '/' ? `/${name}` : `${path}/${name}`;
      infos.push(await this.stat(child).catch(() => ({ name, isDirectory: true, size: 0, mtime: FOLDER_TIME, id: `mount:${child.toLowerCase()}` })));
    }
    return infos.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async chdir(path: string): Promise<string> {
    const info = await this.stat(path);
    if (!info.isDirectory) throw new DropftpError('DROPFTP_ERR_NOT_A_FOLDER');
    this.cwd = path;
    return path;
  }

  async mkdir(path: string): Promise<void> {
    const place = this.#tree.check('mkdir', path);
    if (path === '/' || place.isMountPoint || this.#tree.holdsMount(path)) throw new DropftpError('DROPFTP_ERR_EXISTS');
    if (baseName(path).startsWith(RENAME_TEMP)) throw new DropftpError('DROPFTP_ERR_BAD_PATH');
    await place.store.createFolder(place.dbx);
  }

  async rmdir(path: string): Promise<void> {
    const place = this.#tree.check('delete', path);
    if (path === '/' || place.dbx === '') throw new DropftpError('DROPFTP_ERR_PERMISSION', 'cannot remove the root');
    const { store, dbx } = place;
    // Deciding to delete: ask Dropbox itself, never the cache.
    const entry = await store.rpc.getMetadata(dbx);
    if (entry.tag !== 'folder') throw new DropftpError('DROPFTP_ERR_NOT_A_FOLDER');
    // delete_v2 removes folders recursively: RMD must refuse a folder that still holds anything.
    if (await store.hasChildren(dbx)) throw new DropftpError('DROPFTP_ERR_FOLDER_NOT_EMPTY');
    // delete_v2 takes no parent_rev for folders, so a file committed between that check and the
    // delete would be deleted with the folder. Move the folder aside first (move_v2 is atomic):
    // a commit after the move recreates the folder at its path and stays there; one before it is
    // inside the moved folder, found by a second check, and moved back. Only what is written
    // into the hidden aside name itself could still be lost, and FTP refuses that name.
    const aside = asideName(dbx);
    const record = await store.moveAside(dbx, aside, entry);
    if (await store.hasChildren(aside)) {
      await store.putBackAside(record, entry);
      throw new DropftpError('DROPFTP_ERR_FOLDER_NOT_EMPTY');
    }
    await store.delete(aside);
    await store.settleAside(record);
  }

  async remove(path: string): Promise<void> {
    const place = this.#tree.check('delete', path);
    if (path === '/' || place.dbx === '' || place.isMountPoint) throw new DropftpError('DROPFTP_ERR_NOT_A_FILE');
    const entry = await place.store.rpc.getMetadata(place.dbx);
    if (entry.tag !== 'file') throw new DropftpError('DROPFTP_ERR_NOT_A_FILE');
    try {
      await place.store.delete(place.dbx, entry.rev ?? undefined);
    } catch (err) {
      // parent_rev: a newer version committed since get_metadata is not deleted (said as a conflict).
      if (err instanceof DropftpError && err.code === 'DROPFTP_ERR_EXISTS') {
        throw new DropftpError('DROPFTP_ERR_EXISTS', err.message, { clientDetail: 'the file changed meanwhile; not deleted' });
      }
      throw err;
    }
  }

  async rename(from: string, to: string): Promise<void> {
    const src = this.#tree.check('rename', from);
    const dst = this.#tree.check('rename', to);
    if (from === '/' || to === '/' || src.dbx === '' || dst.dbx === '') throw new DropftpError('DROPFTP_ERR_PERMISSION', 'cannot rename the root');
    if (src.store !== dst.store) throw new DropftpError('DROPFTP_ERR_PERMISSION', 'cannot rename across accounts');
    if (baseName(to).startsWith(RENAME_TEMP)) throw new DropftpError('DROPFTP_ERR_BAD_PATH');
    if (from === to) return;
    const store = src.store;
    const source = await store.stat(src.dbx);
    if (!source) throw notFound(from);
    if (src.dbx.toLowerCase() === dst.dbx.toLowerCase()) {
      // move_v2 refuses case-only renames (dropbox-api.md 3.7): go through a temporary name. A
      // commit at the name in between (a STOR of the file, or into the folder) makes the second
      // move fail: what was moved aside goes back, merged with that commit (AccountStore.putBack).
      const temporary = asideName(dst.dbx);
      const record = await store.moveAside(src.dbx, temporary, source);
      try {
        await store.move(temporary, dst.dbx, source);
      } catch (err) {
        await store.putBackAside(record, source);
        throw err;
      }
      await store.settleAside(record);
      return;
    }
    try {
      await store.move(src.dbx, dst.dbx, source);
    } catch (err) {
      if (!(err instanceof DropftpError && err.code === 'DROPFTP_ERR_EXISTS')) throw err;
      // FTP RNTO replaces an existing file (as rename(2) does); never a folder. Replacing destroys
      // the old file, so it needs the delete permission there too.
      this.#tree.check('delete', to);
      const target = await store.rpc.getMetadata(dst.dbx);
      if (source.tag !== 'file' || target.tag !== 'file') throw err;
      // Dropbox has no move that replaces: the old file goes aside (move_v2 is atomic), the source
      // takes its name, then the old file is deleted. If the source cannot move (another session
      // renamed or deleted it meanwhile), the old file goes back: a failed RNTO changes nothing.
      const aside = asideName(dst.dbx);
      const record = await store.moveAside(dst.dbx, aside, target);
      try {
        await store.move(src.dbx, dst.dbx, source);
      } catch (moveErr) {
        await store.putBackAside(record, target);
        throw moveErr;
      }
      // The rename is done; the old file's delete, if it fails now, is left to the journal: the
      // next start finds the new file at the name and deletes the old one aside.
      try {
        await store.delete(aside);
        await store.settleAside(record);
      } catch {
        /* journaled */
      }
    }
  }

  async openRead(path: string, options: { offset: number }): Promise<Readable> {
    const place = this.#tree.check('read', path);
    return this.#transfers.openDownload(place.store.name, place.dbx, { offset: options.offset });
  }

  /** Size a client should resume an upload from: a kept session's offset, when there is one. */
  keptUploadOffset(path: string): number | null {
    const place = this.#tree.place(path);
    return this.#resumes.peekOffset(ResumeStore.key(this.#user, place.store.name, place.dbx));
  }

  async openWrite(path: string, options: { offset: number; append: boolean; ascii?: boolean; unique?: boolean; continueKept?: boolean }): Promise<UploadSink> {
    const place = this.#tree.check('write', path);
    if (path === '/' || place.dbx === '' || place.isMountPoint || this.#tree.holdsMount(path)) throw new DropftpError('DROPFTP_ERR_NOT_A_FILE');
    if (baseName(path).startsWith(RENAME_TEMP)) throw new DropftpError('DROPFTP_ERR_BAD_PATH');
    const { store, dbx } = place;
    const account = store.name;
    const key = ResumeStore.key(this.#user, account, dbx);
    // The kept session is only looked at here and taken when handed to an upload: a check that
    // fails first (get_metadata after its retries, a folder, a bad offset) leaves it for a resume.
    const kept = this.#resumes.peek(key);
    // TYPE A: the kept session's offset counts stored bytes, the client counts what it sent (CRLF);
    // continuing it from there could commit shifted bytes (vsftpd refuses ASCII resumes too).
    if (options.ascii && (options.offset > 0 || (options.append && options.continueKept && kept))) throw new DropftpError('DROPFTP_ERR_ASCII_RESUME');
    // APPE and REST n continue what is there: ask Dropbox itself, never the cache. A plain STOR
    // spends no call before its first bytes (issue #14): a folder the cache knows is refused now;
    // one it does not know is refused by the commit's own path/conflict/folder, nothing committed.
    const existing = options.append || options.offset > 0 ? await this.#metadata(store, dbx) : store.cached(dbx);
    if (existing?.tag === 'folder') throw new DropftpError('DROPFTP_ERR_NOT_A_FILE');
    // Continue the kept session when the client resumes exactly where it stopped (and no other
    // session of this user took it meanwhile): REST at its offset, or an APPE right after a SIZE
    // that answered it. An APPE without that SIZE means the file: it appends to what is committed
    // (it took the kept session's bytes in place of the file's, and the committed file was lost).
    const resumeAt = options.append ? (options.continueKept ? (kept?.offset ?? -1) : -1) : options.offset;
    if (kept && resumeAt === kept.offset && resumeAt > 0 && this.#resumes.takeIf(key, kept)) {
      return this.#track(key, store, this.#transfers.openUpload(account, dbx, { resume: kept }));
    }
    const prefixBytes = options.append ? (existing?.size ?? 0) : options.offset;
    if (prefixBytes > 0 && (!existing || prefixBytes > existing.size)) throw new DropftpError('DROPFTP_ERR_BAD_OFFSET');
    // A new upload of the path from here on: a kept session of it is obsolete.
    this.#resumes.drop(key);
    const keep = !options.ascii;
    if (prefixBytes === 0) return this.#track(key, store, this.#transfers.openUpload(account, dbx, options.unique ? { mode: 'add' } : {}), keep);
    // The first bytes are copied from the version get_metadata saw, by its rev, and the commit
    // replaces only that version: a file replaced meanwhile fails this upload (nothing committed)
    // instead of being overwritten by a mix of the two, or losing the other writer's bytes.
    const rev = existing?.rev ?? null;
    const upload = this.#transfers.openUpload(account, dbx, rev ? { mode: { update: rev } } : {});
    const prefix = this.#transfers.openDownload(account, rev ? `rev:${rev}` : dbx, { offset: 0 });
    this.#track(key, store, upload, keep);
    return new PrefixedUpload(upload, prefix, prefixBytes);
  }

  async #metadata(store: AccountStore, dbx: string): Promise<DropboxEntry | null> {
    try {
      return await store.rpc.getMetadata(dbx);
    } catch (err) {
      if (err instanceof DropftpError && err.code === 'DROPFTP_ERR_NOT_FOUND') return null;
      throw err;
    }
  }

  /**
   * A committed upload shows at once; one that fails before its commit keeps its session for a
   * resume (unless `keep` is false: TYPE A uploads, whose offsets no client can resume from).
   */
  #track(key: string, store: AccountStore, upload: EngineUpload, keep = true): EngineUpload {
    let finished = false;
    upload.once('finish', () => {
      finished = true;
      const committed: CommittedFile | null | undefined = upload.metadata;
      if (committed) store.noteUpload(committed);
    });
    upload.once('close', () => {
      if (finished || !keep) return;
      upload.interrupted().then(
        (token) => token && token.offset > 0 && this.#resumes.keep(key, token),
        () => {},
      );
    });
    return upload;
  }
}
