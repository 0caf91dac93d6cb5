// The host kernel's TCP counters over a run: memory pressure, receive-queue drops, retransmission
// timeouts, and the peak of the memory all TCP sockets hold. Runs on the benchmark's main thread.
// Why: a storm runs its clients, the server and (for dropftp) the local box on one host, so every
// byte in flight sits in socket buffers twice over on one kernel. Past net.ipv4.tcp_mem's pressure
// mark the kernel prunes and drops received segments, and senders wait out retransmission timeouts
// that double each time: tens of seconds with no byte on a connection, whatever the server does
// (2,000 x 16 MiB: STORs stalled 15 s on pyftpdlib, 16-28 s straight against the local box).
// These counters say whether a run's stalls came from there. Invariants: host-wide figures (every
// process on the host adds to them); nothing here throws (a missing /proc file reads as null).

import { readFileSync } from 'node:fs';

export interface KernelTcp {
  /** Times the kernel entered TCP memory pressure, and milliseconds spent in it (TCPMemoryPressures[Chrono]). */
  memoryPressures: number | null;
  memoryPressureMs: number | null;
  /** Segments dropped because a socket's receive queue was over its memory (TCPRcvQDrop), and queue prunes (PruneCalled). */
  receiveQueueDrops: number | null;
  prunes: number | null;
  /** Retransmission timeouts (TCPTimeouts) and segments retransmitted (Tcp RetransSegs). */
  retransmitTimeouts: number | null;
  retransmittedSegments: number | null;
  /** Most memory all TCP sockets held at a sample (/proc/net/sockstat), and the pressure mark (tcp_mem's middle value). */
  peakSocketBytes: number | null;
  pressureMarkBytes: number | null;
  /**
   * The host's TCP congestion control (net.ipv4.tcp_congestion_control) and loopback MTU: they shape
   * how a flow recovers from those drops (2,000 x 16 MiB through dropftp on one host: longest stall
   * 74-116 s with bbr, 60 s with cubic, pressure 68 and 33 s), so a result names them.
   */
  congestionControl: string | null;
  loopbackMtu: number | null;
}

const PAGE_BYTES = 4096;

/** Reads a /proc file as text; null when it cannot. */
export type ProcReader = (path: string) => string | null;

const readProc: ProcReader = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
};

/** The "Prefix: names" / "Prefix: values" line pairs of /proc/net/netstat or /proc/net/snmp, as "Prefix:Name" -> value. */
export function counterPairs(text: string | null): Map<string, number> {
  const out = new Map<string, number>();
  if (text === null) return out;
  const lines = text.split('\n');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = lines[i]!.trim().split(/\s+/);
    const values = lines[i + 1]!.trim().split(/\s+/);
    if (names[0] !== values[0]) continue;
    for (let k = 1; k < names.length && k < values.length; k++) out.set(`${names[0]}${names[k]}`, Number(values[k]));
  }
  return out;
}

/** Memory all TCP sockets hold by /proc/net/sockstat's text, bytes (null: no TCP line). */
export function socketBytesOf(sockstat: string | null): number | null {
  const m = sockstat === null ? null : /^TCP:.*\bmem (\d+)/m.exec(sockstat);
  return m ? Number(m[1]) * PAGE_BYTES : null;
}

/** Memory all TCP sockets hold now, bytes (null: not readable). */
export function socketBytes(read: ProcReader = readProc): number | null {
  return socketBytesOf(read('/proc/net/sockstat'));
}

/**
 * Starts counting; sample() during the run keeps the peak; end() gives the deltas. The kernel
 * counts socket memory with per-CPU reserves (about 1 MiB each on recent kernels), so the peak is
 * coarse by that much: what matters is how it stands against the pressure mark.
 */
export function startKernelTcp(read: ProcReader = readProc): { sample(): void; end(): KernelTcp } {
  const counters = (): Map<string, number> => {
    const all = counterPairs(read('/proc/net/netstat'));
    for (const [k, v] of counterPairs(read('/proc/net/snmp'))) all.set(k, v);
    return all;
  };
  const before = counters();
  let peak = socketBytes(read);
  const sample = (): void => {
    const now = socketBytes(read);
    if (now !== null && (peak === null || now > peak)) peak = now;
  };
  return {
    sample,
    end(): KernelTcp {
      sample();
      const after = counters();
      const delta = (key: string): number | null => {
        const a = before.get(key);
        const b = after.get(key);
        return a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) ? null : b - a;
      };
      const mark = read('/proc/sys/net/ipv4/tcp_mem')?.trim().split(/\s+/).map(Number)[1];
      const cc = read('/proc/sys/net/ipv4/tcp_congestion_control')?.trim();
      const mtu = Number(read('/sys/class/net/lo/mtu')?.trim() ?? NaN);
      return {
        memoryPressures: delta('TcpExt:TCPMemoryPressures'),
        memoryPressureMs: delta('TcpExt:TCPMemoryPressuresChrono'),
        receiveQueueDrops: delta('TcpExt:TCPRcvQDrop'),
        prunes: delta('TcpExt:PruneCalled'),
        retransmitTimeouts: delta('TcpExt:TCPTimeouts'),
        retransmittedSegments: delta('Tcp:RetransSegs'),
        peakSocketBytes: peak,
        pressureMarkBytes: mark !== undefined && Number.isFinite(mark) ? mark * PAGE_BYTES : null,
        congestionControl: cc ? cc : null,
        loopbackMtu: Number.isInteger(mtu) && mtu > 0 ? mtu : null,
      };
    },
  };
}

/** One line for the summary. */
export function kernelTcpLine(server: string, k: KernelTcp): string {
  const mib = (b: number | null): string => (b === null ? '-' : `${Math.round(b / 2 ** 20)} MiB`);
  const n = (v: number | null): string => (v === null ? '-' : String(v));
  return (
    `${server}: host TCP during the run: socket memory peak ${mib(k.peakSocketBytes)} (pressure mark ${mib(k.pressureMarkBytes)}), ` +
    `memory pressure ${n(k.memoryPressures)} times for ${k.memoryPressureMs === null ? '-' : (k.memoryPressureMs / 1000).toFixed(1)} s, ` +
    `receive-queue drops ${n(k.receiveQueueDrops)}, prunes ${n(k.prunes)}, retransmission timeouts ${n(k.retransmitTimeouts)}, segments retransmitted ${n(k.retransmittedSegments)}; ` +
    `congestion control ${k.congestionControl ?? '-'}, loopback MTU ${n(k.loopbackMtu)}`
  );
}
