// The servers a scale run compares ("peers"): how each one is started on loopback with its files
// in a fresh directory, what the load generator connects to, and which process to sample. Runs on
// the benchmark's main thread. Invariant: close() stops every process the peer started.

import type { Target } from '../loadgen/protocol.ts';

export interface PeerContext {
  /** Fresh, empty directory the peer owns for this run (its files, config, logs). */
  workDir: string;
  /** Passive data port range [first, last] (outside the kernel's ephemeral range). */
  pasvPorts: [number, number];
  /** Sessions the run will open at once (a forking server is capped below what would exhaust pids). */
  sessions: number;
  /** Dropbox's call-rate limit on the backend this peer starts ("RATE[:BURST]", local box peers only); null: none. */
  boxRateLimit?: string | null;
  /** Extra `dropftp serve` flags (--gateway-options; dropftp peers only), e.g. ['--engine-memory-budget-bytes', '64MiB']. */
  gatewayFlags?: string[];
}

export interface EluSample {
  /** Absolute ms (wall clock). */
  tMs: number;
  utilization: number;
}

/** Call counters of the storage backend (the local box's GET /admin/calls), as it counts them. */
export interface BackendCalls {
  routes: Record<string, { calls: number; status: Record<string, number> }>;
  bytes: { served: number; received: number };
  /** Retry-After windows the box announced (429s of its rate limit) and the calls that arrived inside one. */
  retryAfterWindows?: { windows: number; callsInside: number; callsInsideLate: number; startedInside?: number; startedInsideLate?: number; startedInsideMaxMs?: number };
}

/** The storage server behind a peer, when the benchmark can see it: its process and its counters. */
export interface BackendProbe {
  pid: number;
  calls(): Promise<BackendCalls>;
  resetCalls(): Promise<void>;
  /** Replaces the backend's call-rate limit now ("RATE[:BURST]"; null: off), when it has one to change. */
  setRateLimit?(spec: string | null): Promise<void>;
}

export interface PeerInstance {
  name: string;
  target: Target;
  /** The process whose RSS is "server RSS"; its tree gives PSS and CPU. */
  pid: number;
  /**
   * The storage backend (a local box) when the benchmark started it: calls per transfer by route are
   * counted there, and its CPU apart from the gateway's. Its pid equals `pid` when there is no gateway.
   */
  backend?: BackendProbe;
  /** Main-thread event-loop utilisation samples so far, or null where the server cannot report it. */
  elu(): EluSample[] | null;
  /** Upload spool files the gateway holds under <dataDir>/spool now (null where it has none to count). */
  spoolFiles?(): number | null;
  /** Anything a reader must know about how this peer was configured. */
  notes: string[];
  close(): Promise<void>;
}

export interface PeerDef {
  name: string;
  description: string;
  /** Scenarios this peer takes part in. */
  scenarios: readonly string[];
  /** Null when it can run here, else why not (after trying to install what it needs). */
  prepare(): Promise<string | null>;
  start(ctx: PeerContext): Promise<PeerInstance>;
}
