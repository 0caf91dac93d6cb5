// How many scrypt computations (password checks and hashes) may run at once, process-wide: a
// memory-weighted FIFO gate. Main thread (the scrypt work itself runs on libuv's pool). Invariants:
// the memory of the computations running together (128·N·r each, 16 MiB for our hashes) stays within
// maxBytes, and at most maxRunning run, one pool thread fewer than the pool so that file system and
// DNS work still get a thread during a login storm; waiters are served in arrival order; one
// computation larger than maxBytes runs alone.

export interface ScryptGateOptions {
  maxBytes: number;
  maxRunning: number;
}

/** libuv's pool size as this process was started with (the launcher sets it; libuv's default 4). */
export function threadPoolSize(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.UV_THREADPOOL_SIZE);
  return Number.isInteger(n) && n >= 1 ? Math.min(n, 1024) : 4;
}

export class ScryptGate {
  readonly maxBytes: number;
  readonly maxRunning: number;
  #bytes = 0;
  #running = 0;
  readonly #waiting: { bytes: number; go: () => void }[] = [];
  /** Most computations seen running at once (for tests and benchmarks). */
  peakRunning = 0;

  constructor(options: ScryptGateOptions) {
    if (!(options.maxBytes > 0) || !(Number.isInteger(options.maxRunning) && options.maxRunning >= 1)) {
      throw new TypeError('ScryptGate: maxBytes > 0 and an integer maxRunning >= 1 are required');
    }
    this.maxBytes = options.maxBytes;
    this.maxRunning = options.maxRunning;
  }

  get running(): number {
    return this.#running;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  /** Runs `work` once `bytes` of scrypt memory and a slot are free. */
  async run<T>(bytes: number, work: () => Promise<T>): Promise<T> {
    if (this.#waiting.length === 0 && this.#fits(bytes)) this.#take(bytes);
    else await new Promise<void>((go) => this.#waiting.push({ bytes, go })); // #next took it for us
    try {
      return await work();
    } finally {
      this.#running--;
      this.#bytes -= bytes;
      this.#next();
    }
  }

  #fits(bytes: number): boolean {
    if (this.#running >= this.maxRunning) return false;
    return this.#running === 0 || this.#bytes + bytes <= this.maxBytes;
  }

  #take(bytes: number): void {
    this.#running++;
    this.#bytes += bytes;
    if (this.#running > this.peakRunning) this.peakRunning = this.#running;
  }

  #next(): void {
    // Strict arrival order: a large waiter at the head is not overtaken by small ones behind it.
    while (this.#waiting.length > 0 && this.#fits(this.#waiting[0]!.bytes)) {
      const head = this.#waiting.shift()!;
      this.#take(head.bytes);
      head.go();
    }
  }
}
