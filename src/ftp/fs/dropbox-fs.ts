// One session's file system over a Dropbox account: metadata through the RPC client, bytes through
// the transfer engine. Main thread. Invariants: every path is jailed under the user's root folder
// (paths.ts); RMD refuses a non-empty folder (delete_v2 is recursive); DELE refuses folders and
// deletes only the version it looked at (parent_rev); case-only renames go through a temporary
// name (move_v2 refuses them); an interrupted STOR commits nothing but its upload session is kept
// (resume-store.ts) for REST n + STOR or APPE by the same user; APPE and REST beyond a kept session
// compose a new version from the current bytes and the new ones.

import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { DropftpError } from '../../errors.ts';
import type { DropboxEntry, DropboxRpc } from '../../dropbox/rpc.ts';
import { baseName, normalizeRoot, parentOf, resolveClientPath, toDropboxPath } from './paths.ts';
import { PrefixedUpload } from './prefixed-upload.ts';
import { ResumeStore } from './resume-store.ts';
import type { EngineUpload, TransferAdapter } from './transfer-adapter.ts';
import type { FileInfo, SessionFs, UploadSink } from './types.ts';

export interface DropboxFsOptions {
  rpc: DropboxRpc;
  transfers: TransferAdapter;
  /** The engine's name for the account (engine.setAccount). */
  account: string;
  /** FTP user name: kept upload sessions belong to one user. */
  user: string;
  /** Dropbox folder that is this user's '/', e.g. '' or '/ftp/alice'. */
  root?: string;
  resumes?: ResumeStore;
}

const FOLDER_TIME = new Date(0);

function toInfo(entry: DropboxEntry): FileInfo {
  return {
    name: entry.name,
    isDirectory: entry.tag === 'folder',
    size: entry.size,
    mtime: entry.modified ?? FOLDER_TIME,
    id: entry.id,
  };
}

export class DropboxFs implements SessionFs {
  cwd = '/';
  readonly #rpc: DropboxRpc;
  readonly #transfers: TransferAdapter;
  readonly #account: string;
  readonly #user: string;
  readonly #root: string;
  readonly #resumes: ResumeStore;

  constructor(options: DropboxFsOptions) {
    this.#rpc = options.rpc;
    this.#transfers = options.transfers;
    this.#account = options.account;
    this.#user = options.user;
    this.#root = normalizeRoot(options.root ?? '');
    this.#resumes = options.resumes ?? new ResumeStore();
  }

  resolve(arg: string): string {
    return resolveClientPath(this.cwd, arg);
  }

  #dbx(path: string): string {
    return toDropboxPath(this.#root, path);
  }

  async stat(path: string): Promise<FileInfo> {
    const dbx = this.#dbx(path);
    if (dbx === '' || path === '/') {
      if (dbx !== '') await this.#folderEntry(dbx); // the user's root must exist
      return { name: '/', isDirectory: true, size: 0, mtime: FOLDER_TIME, id: 'root' };
    }
    return toInfo(await this.#rpc.getMetadata(dbx));
  }

  async #folderEntry(dbx: string): Promise<DropboxEntry> {
    const entry = await this.#rpc.getMetadata(dbx);
    if (entry.tag !== 'folder') throw new DropftpError('DROPFTP_ERR_NOT_A_FOLDER');
    return entry;
  }

  async list(path: string): Promise<FileInfo[]> {
    const entries = await this.#rpc.listFolder(this.#dbx(path));
    return entries.map(toInfo).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async chdir(path: string): Promise<string> {
    const info = await this.stat(path);
    if (!info.isDirectory) throw new DropftpError('DROPFTP_ERR_NOT_A_FOLDER');
    this.cwd = path;
    return path;
  }

  async mkdir(path: string): Promise<void> {
    if (path === '/') throw new DropftpError('DROPFTP_ERR_EXISTS');
    await this.#rpc.createFolder(this.#dbx(path));
  }

  async rmdir(path: string): Promise<void> {
    if (path === '/') throw new DropftpError('DROPFTP_ERR_PERMISSION', 'cannot remove the root');
    const dbx = this.#dbx(path);
    await this.#folderEntry(dbx);
    // delete_v2 removes folders recursively: RMD must refuse a folder that still holds anything.
    if (await this.#rpc.hasChildren(dbx)) throw new DropftpError('DROPFTP_ERR_FOLDER_NOT_EMPTY');
    await this.#rpc.delete(dbx);
  }

  async remove(path: string): Promise<void> {
    if (path === '/') throw new DropftpError('DROPFTP_ERR_NOT_A_FILE');
    const dbx = this.#dbx(path);
    const entry = await this.#rpc.getMetadata(dbx);
    if (entry.tag !== 'file') throw new DropftpError('DROPFTP_ERR_NOT_A_FILE');
    await this.#rpc.delete(dbx, entry.rev ?? undefined);
  }

  async rename(from: string, to: string): Promise<void> {
    if (from === '/' || to === '/') throw new DropftpError('DROPFTP_ERR_PERMISSION', 'cannot rename the root');
    if (from === to) return;
    const src = this.#dbx(from);
    const dst = this.#dbx(to);
    if (src.toLowerCase() === dst.toLowerCase()) {
      // move_v2 refuses case-only renames (dropbox-api.md 3.7): go through a temporary name.
      const temporary = `${this.#dbx(parentOf(to))}/.dropftp-rename-${randomBytes(6).toString('hex')}`;
      await this.#rpc.move(src, temporary);
      try {
        await this.#rpc.move(temporary, dst);
      } catch (err) {
        await this.#rpc.move(temporary, src).catch(() => {});
        throw err;
      }
      return;
    }
    try {
      await this.#rpc.move(src, dst);
    } catch (err) {
      if (!(err instanceof DropftpError && err.code === 'DROPFTP_ERR_EXISTS')) throw err;
      // FTP RNTO replaces an existing file (as rename(2) does); never a folder.
      const [source, target] = await Promise.all([this.#rpc.getMetadata(src), this.#rpc.getMetadata(dst)]);
      if (source.tag !== 'file' || target.tag !== 'file') throw err;
      await this.#rpc.delete(dst, target.rev ?? undefined);
      await this.#rpc.move(src, dst);
    }
  }

  async openRead(path: string, options: { offset: number }): Promise<Readable> {
    return this.#transfers.openDownload(this.#account, this.#dbx(path), { offset: options.offset });
  }

  /** Size a client should resume an upload from: a kept session's offset, when there is one. */
  keptUploadOffset(path: string): number | null {
    return this.#resumes.peekOffset(ResumeStore.key(this.#user, this.#account, this.#dbx(path)));
  }

  async openWrite(path: string, options: { offset: number; append: boolean }): Promise<UploadSink> {
    if (path === '/') throw new DropftpError('DROPFTP_ERR_NOT_A_FILE');
    if (baseName(path).startsWith('.dropftp-rename-')) throw new DropftpError('DROPFTP_ERR_BAD_PATH');
    const dbx = this.#dbx(path);
    const key = ResumeStore.key(this.#user, this.#account, dbx);
    const kept = this.#resumes.take(key);
    const existing = await this.#rpc.getMetadata(dbx).catch((err: unknown) => {
      if (err instanceof DropftpError && err.code === 'DROPFTP_ERR_NOT_FOUND') return null;
      throw err;
    });
    if (existing?.tag === 'folder') throw new DropftpError('DROPFTP_ERR_NOT_A_FILE');
    // Continue the kept session when the client resumes exactly where it stopped.
    const resumeAt = options.append ? (kept?.offset ?? -1) : options.offset;
    if (kept && resumeAt === kept.offset && resumeAt > 0) {
      return this.#track(key, this.#transfers.openUpload(this.#account, dbx, { resume: kept }));
    }
    const prefixBytes = options.append ? (existing?.size ?? 0) : options.offset;
    if (prefixBytes === 0) return this.#track(key, this.#transfers.openUpload(this.#account, dbx, {}));
    if (!existing || prefixBytes > existing.size) throw new DropftpError('DROPFTP_ERR_BAD_OFFSET');
    const upload = this.#transfers.openUpload(this.#account, dbx, {});
    const prefix = this.#transfers.openDownload(this.#account, dbx, { offset: 0 });
    this.#track(key, upload);
    return new PrefixedUpload(upload, prefix, prefixBytes);
  }

  /** When an upload fails before its commit, keep its session for a later resume. */
  #track(key: string, upload: EngineUpload): EngineUpload {
    let finished = false;
    upload.once('finish', () => (finished = true));
    upload.once('close', () => {
      if (finished) return;
      upload.interrupted().then(
        (token) => token && token.offset > 0 && this.#resumes.keep(key, token),
        () => {},
      );
    });
    return upload;
  }
}
