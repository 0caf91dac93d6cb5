// An FTP server for protocol tests that never touch storage: logins succeed for alice/secret with a
// file system whose Dropbox endpoint refuses connections (any storage call fails with 451).
// Test code only.

import { DropftpError } from '../../../src/errors.ts';
import { DropboxRpc } from '../../../src/dropbox/rpc.ts';
import { DropboxFs } from '../../../src/ftp/fs/dropbox-fs.ts';
import { FtpServer, type FtpServerOptions } from '../../../src/ftp/server.ts';

export async function startProtocolServer(options: FtpServerOptions = {}): Promise<{ server: FtpServer; port: number }> {
  const rpc = new DropboxRpc({ name: 'dead', apiUrl: 'http://127.0.0.1:9', accessToken: 'x' });
  const transfers = {
    openDownload: () => {
      throw new DropftpError('DROPFTP_ERR_UPSTREAM', 'no storage in protocol tests');
    },
    openUpload: () => {
      throw new DropftpError('DROPFTP_ERR_UPSTREAM', 'no storage in protocol tests');
    },
  };
  const server = new FtpServer({
    host: '127.0.0.1',
    port: 0,
    authenticate: async ({ username, password }) => {
      if (username !== 'alice' || password !== 'secret') throw new DropftpError('DROPFTP_ERR_LOGIN_FAILED');
      return { fs: new DropboxFs({ rpc, transfers, account: 'dead', user: username }) };
    },
    ...options,
  });
  const address = await server.listen();
  return { server, port: address.port };
}
