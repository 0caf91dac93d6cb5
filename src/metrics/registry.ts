// dropftp's metrics over prom-client (the Prometheus client most Node services use): one
// prom-client Registry per running service (tests run several side by side), optionally with its
// default process and Node.js series (process_cpu_seconds_total, nodejs_eventloop_lag_seconds, …);
// counters dropftp increments, histograms, and values read from other modules at scrape time. Main
// thread. Invariants: label names are declared with the metric (prom-client rejects others); a
// counter never goes down; a collector that throws (module closed) leaves its series out of that scrape.

import client from 'prom-client';

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

  constructor(registry: client.Registry, readonly name: string, help: string, labelNames: readonly string[]) {
    this.#labelNames = labelNames;
    const series = this.#series;
    const collectors = this.#collectors;
    new client.Counter({
      name,
      help,
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

export class Registry {
  readonly prom = new client.Registry();

  /** `defaultMetrics`: prom-client's process and Node.js series, unprefixed as dashboards expect. */
  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics) client.collectDefaultMetrics({ register: this.prom, eventLoopMonitoringPrecision: 10 });
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return new Counter(this.prom, name, help, labelNames);
  }

  histogram(name: string, help: string, buckets: number[], labelNames: readonly string[] = []): client.Histogram {
    // prom-client counts into the buckets in the order given: they must ascend.
    return new client.Histogram({ name, help, buckets: [...buckets].sort((a, b) => a - b), labelNames, registers: [this.prom] });
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
    const fill = function (this: client.Gauge | client.Counter): void {
      this.reset();
      let got: Sample[];
      try {
        got = samples(read());
      } catch {
        return;
      }
      for (const s of got) {
        if (this instanceof client.Gauge) this.set(s.labels ?? {}, s.value);
        else if (s.value >= 0) this.inc(s.labels ?? {}, s.value);
      }
    };
    if (type === 'gauge') new client.Gauge({ name, help, labelNames, registers: [this.prom], collect: fill });
    else new client.Counter({ name, help, labelNames, registers: [this.prom], collect: fill });
  }

  /** The whole exposition text (prom-client collects every metric, then formats). */
  metrics(): Promise<string> {
    return this.prom.metrics();
  }

  get contentType(): string {
    return this.prom.contentType;
  }

  /** Stops the default metrics' collectors' use of this registry and drops every metric. */
  clear(): void {
    this.prom.clear();
  }
}

function samples(value: Sample[] | number): Sample[] {
  return typeof value === 'number' ? [{ value }] : value;
}

export const CONTENT_TYPE = client.Registry.PROMETHEUS_CONTENT_TYPE;
