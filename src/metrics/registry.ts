// dropftp's metrics over prom-client (the Prometheus client most Node services use): one
// prom-client Registry per running service (tests run several side by side), optionally with its
// default process and Node.js series (process_cpu_seconds_total, nodejs_eventloop_lag_seconds, …);
// counters dropftp increments, histograms, and values read from other modules at scrape time. Main
// thread. Invariants: label names are declared with the metric (prom-client rejects others); a
// counter never goes down; a collector that throws (module closed) leaves its series out of that
// scrape. A `lazy` registry loads prom-client only at expose() (or the first scrape): until then its
// metrics are declarations, counters count on their own, and histogram observations are not kept.

import { createRequire } from 'node:module';
import type client from 'prom-client';

type PromClient = typeof client;

let loaded: PromClient | null = null;

/** prom-client, loaded on first use (with @opentelemetry/api it is ~80 files a server without /metrics never needs). */
function promClient(): PromClient {
  loaded ??= createRequire(import.meta.url)('prom-client') as PromClient;
  return loaded;
}

type Labels = Record<string, string>;

/** A sample produced at scrape time. */
export interface Sample {
  labels?: Labels;
  value: number;
}

function key(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * A counter dropftp increments, readable synchronously (get) and, through collect(), merged at
 * scrape time with counts kept elsewhere (engine atomics) that carry the same labels.
 */
export class Counter {
  readonly #series = new Map<string, { labels: Labels; value: number }>();
  readonly #collectors: (() => Sample[])[] = [];
  readonly #labelNames: readonly string[];

  constructor(readonly name: string, readonly help: string, labelNames: readonly string[]) {
    this.#labelNames = labelNames;
  }

  /** Registers the prom-client counter that reports this one at each scrape. */
  bind(prom: PromClient, registry: client.Registry): void {
    const series = this.#series;
    const collectors = this.#collectors;
    const labelNames = this.#labelNames;
    new prom.Counter({
      name: this.name,
      help: this.help,
      labelNames,
      registers: [registry],
      // Rebuilt from dropftp's own counts plus the collectors' at every scrape.
      collect(this: client.Counter) {
        this.reset();
        const merged = new Map([...series].map(([k, s]) => [k, { labels: s.labels, value: s.value }]));
        for (const read of collectors) {
          let samples: Sample[];
          try {
            samples = read();
          } catch {
            continue; // a collector that cannot read now adds nothing to this scrape
          }
          for (const sample of samples) {
            const labels = sample.labels ?? {};
            const s = merged.get(key(labels));
            if (s) s.value += sample.value;
            else merged.set(key(labels), { labels, value: sample.value });
          }
        }
        for (const s of merged.values()) if (s.value >= 0) this.inc(s.labels, s.value);
      },
    });
  }

  /** Adds counts kept elsewhere, read at scrape time, to the series with the same labels. */
  collect(read: () => Sample[]): void {
    this.#collectors.push(read);
  }

  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) return; // counters never go down
    const k = key(labels);
    const s = this.#series.get(k);
    if (s) s.value += by;
    else this.#series.set(k, { labels: this.#ordered(labels), value: by });
  }

  get(labels: Labels = {}): number {
    return this.#series.get(key(labels))?.value ?? 0;
  }

  /** The labels in declaration order (the order they are written in), unknown ones last. */
  #ordered(labels: Labels): Labels {
    const out: Labels = {};
    for (const name of this.#labelNames) if (Object.hasOwn(labels, name)) out[name] = labels[name]!;
    return Object.assign(out, labels);
  }
}

/** A histogram: observations go to prom-client once its registry is exposed, and are dropped before. */
export class Histogram {
  #bound: client.Histogram | null = null;

  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[], readonly labelNames: readonly string[]) {}

  bind(prom: PromClient, registry: client.Registry): void {
    // prom-client counts into the buckets in the order given: they must ascend.
    const buckets = [...this.buckets].sort((a, b) => a - b);
    this.#bound = new prom.Histogram({ name: this.name, help: this.help, buckets, labelNames: this.labelNames, registers: [registry] });
  }

  observe(labels: Labels, value: number): void {
    this.#bound?.observe(labels, value);
  }
}

type Binding = (prom: PromClient, registry: client.Registry) => void;

export class Registry {
  readonly #defaultMetrics: boolean;
  #prom: client.Registry | null = null;
  /** Declarations made before expose() (lazy registries only), bound in order. */
  readonly #pending: Binding[] = [];

  /**
   * `defaultMetrics`: prom-client's process and Node.js series, unprefixed as dashboards expect.
   * `lazy`: prom-client loads at expose() or the first scrape, not now.
   */
  constructor(options: { defaultMetrics?: boolean; lazy?: boolean } = {}) {
    this.#defaultMetrics = options.defaultMetrics === true;
    if (!options.lazy) this.expose();
  }

  /** Loads prom-client and registers every metric declared so far (idempotent). */
  expose(): client.Registry {
    if (this.#prom) return this.#prom;
    const prom = promClient();
    const registry = new prom.Registry();
    if (this.#defaultMetrics) prom.collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
    for (const bind of this.#pending.splice(0)) bind(prom, registry);
    this.#prom = registry;
    return registry;
  }

  #declare(bind: Binding): void {
    if (this.#prom) bind(promClient(), this.#prom);
    else this.#pending.push(bind);
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    const counter = new Counter(name, help, labelNames);
    this.#declare((prom, registry) => counter.bind(prom, registry));
    return counter;
  }

  histogram(name: string, help: string, buckets: number[], labelNames: readonly string[] = []): Histogram {
    const histogram = new Histogram(name, help, buckets, labelNames);
    this.#declare((prom, registry) => histogram.bind(prom, registry));
    return histogram;
  }

  /** A gauge read at scrape time. */
  gauge(name: string, help: string, read: () => Sample[] | number, labelNames: readonly string[] = []): void {
    this.#collected('gauge', name, help, read, labelNames);
  }

  /** A counter kept elsewhere (engine atomics), read at scrape time. */
  counterFrom(name: string, help: string, read: () => Sample[] | number, labelNames: readonly string[] = []): void {
    this.#collected('counter', name, help, read, labelNames);
  }

  #collected(type: 'gauge' | 'counter', name: string, help: string, read: () => Sample[] | number, labelNames: readonly string[]): void {
    this.#declare((prom, registry) => collected(prom, registry, type, name, help, read, labelNames));
  }

  /**
   * The whole exposition text (prom-client collects every metric, then formats). prom-client 15
   * writes a NaN sample as `Nan`; the text format spells it `NaN` (a parser that takes the spelling
   * literally, OpenMetrics' among them, refuses the scrape). NaN is what the default event-loop lag
   * series read when no delay was recorded since the last scrape (two scrapes within ~10 ms).
   */
  async metrics(): Promise<string> {
    return (await this.expose().metrics()).replace(NAN_SAMPLE, '$1NaN');
  }

  get contentType(): string {
    return this.expose().contentType;
  }

  /** Stops the default metrics' collectors' use of this registry and drops every metric. */
  clear(): void {
    this.#pending.length = 0;
    this.#prom?.clear();
  }
}

function collected(prom: PromClient, registry: client.Registry, type: 'gauge' | 'counter', name: string, help: string, read: () => Sample[] | number, labelNames: readonly string[]): void {
  const fill = function (this: client.Gauge | client.Counter): void {
    this.reset();
    let got: Sample[];
    try {
      got = samples(read());
    } catch {
      return;
    }
    for (const s of got) {
      if (this instanceof prom.Gauge) this.set(s.labels ?? {}, s.value);
      else if (s.value >= 0) this.inc(s.labels ?? {}, s.value);
    }
  };
  if (type === 'gauge') new prom.Gauge({ name, help, labelNames, registers: [registry], collect: fill });
  else new prom.Counter({ name, help, labelNames, registers: [registry], collect: fill });
}

function samples(value: Sample[] | number): Sample[] {
  return typeof value === 'number' ? [{ value }] : value;
}

/** A sample line (not a `#` comment) whose value prom-client wrote as `Nan`. */
const NAN_SAMPLE = /^([^#\n][^\n]* )Nan$/gm;

/** The Prometheus text format's content type (loads prom-client). */
export function contentType(): string {
  return promClient().Registry.PROMETHEUS_CONTENT_TYPE;
}
