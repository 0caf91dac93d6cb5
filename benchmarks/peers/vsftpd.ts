// Peer: vsftpd (Debian vsftpd) on local disk, one local system user (created if missing, given a
// fresh random password each run), started in the foreground with a generated config on loopback.
// Main thread. Invariants: vsftpd forks two processes per session, so max_clients is capped
// (MAX_SESSIONS) well below what would exhaust this machine's pids and memory; the cap is reported.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDebPackages, freePort, outputTail, startProcess, stopProcess, waitForListener } from './process-util.ts';
import type { PeerDef } from './types.ts';
import { processTree } from '../loadgen/proc-stats.ts';

const USER = 'ftpbench';
export const VSFTPD_MAX_SESSIONS = 2500;

function ensureUser(password: string, home: string): { uid: number; gid: number } {
  try {
    execFileSync('id', ['-u', USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--no-create-home', '--home-dir', home, '--shell', '/bin/bash', USER]);
  }
  // vsftpd changes into the home directory before local_root: point it at this run's directory.
  execFileSync('usermod', ['--home', home, USER]);
  execFileSync('chpasswd', { input: `${USER}:${password}\n` });
  const uid = Number(execFileSync('id', ['-u', USER]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', USER]).toString().trim());
  return { uid, gid };
}

export const vsftpdPeer: PeerDef = {
  name: 'vsftpd',
  description: 'vsftpd (Debian), local disk, process per session',
  scenarios: ['idle', 'storm', 'big', 'churn'],
  async prepare() {
    if (process.getuid?.() !== 0) return 'vsftpd needs root (system user, PAM login)';
    return ensureDebPackages(['vsftpd']);
  },
  async start(ctx) {
    const port = await freePort();
    const password = randomBytes(9).toString('base64url');
    const root = join(ctx.workDir, 'files');
    mkdirSync(root, { recursive: true });
    chmodSync(ctx.workDir, 0o755); // mkdtemp's 0700 would keep the session user out
    const { uid, gid } = ensureUser(password, root);
    chownSync(root, uid, gid);
    mkdirSync('/var/run/vsftpd/empty', { recursive: true });
    const maxClients = Math.min(VSFTPD_MAX_SESSIONS, ctx.sessions + 64);
    const conf = join(ctx.workDir, 'vsftpd.conf');
    writeFileSync(
      conf,
      [
        'listen=YES',
        'listen_ipv6=NO',
        'listen_address=127.0.0.1',
        `listen_port=${port}`,
        'background=NO',
        'anonymous_enable=NO',
        'local_enable=YES',
        'write_enable=YES',
        'local_umask=022',
        `local_root=${root}`,
        'chroot_local_user=NO',
        'pasv_enable=YES',
        'pasv_address=127.0.0.1',
        `pasv_min_port=${ctx.pasvPorts[0]}`,
        `pasv_max_port=${ctx.pasvPorts[1]}`,
        'port_enable=NO',
        'pam_service_name=vsftpd',
        'secure_chroot_dir=/var/run/vsftpd/empty',
        'seccomp_sandbox=NO',
        'isolate=NO',
        'isolate_network=NO',
        `max_clients=${maxClients}`,
        'max_per_ip=0',
        'idle_session_timeout=900',
        'data_connection_timeout=300',
        'xferlog_enable=NO',
        'dual_log_enable=NO',
        'syslog_enable=NO',
        'vsftpd_log_file=/dev/null',
        'use_localtime=NO',
        'ftpd_banner=vsftpd ready',
        '',
      ].join('\n'),
    );
    const child = startProcess('/usr/sbin/vsftpd', [conf]);
    try {
      await waitForListener('127.0.0.1', port, 20_000, child);
    } catch (err) {
      await stopProcess(child);
      throw new Error(`vsftpd: ${(err as Error).message}\n${outputTail(child)}`);
    }
    return {
      name: 'vsftpd',
      target: { kind: 'ftp', host: '127.0.0.1', port, user: USER, password },
      pid: child.pid!,
      elu: () => null,
      notes: [`vsftpd: process per session (2 each), max_clients=${maxClients} (cap ${VSFTPD_MAX_SESSIONS} protects this machine's pids and memory); RSS is the listener's, PSS sums the tree`],
      async close() {
        // Session processes would outlive the listener: end this peer's own tree, by pid.
        for (const pid of processTree(child.pid!).slice(1)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        await stopProcess(child);
      },
    };
  },
};
