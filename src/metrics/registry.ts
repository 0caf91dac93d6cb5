// A small metrics registry rendered in the Prometheus text exposition format 0.0.4: counters,
// gauges and histograms with labels, plus collectors that read other modules' state at scrape time.
// Main thread. Invariants: one registry per running service (tests run several side by side); label
// values are escaped (\\, ", newline); names are checked once at registration; series of one
// metric are rendered together under one HELP/TYPE header, in insertion order.

type Labels = Record<string, string>;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatLabels(labels: Labels, extra?: [string, string]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function key(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
}

interface Metric {
  readonly name: string;
  render(out: string[]): void;
}

export class Counter implements Metric {
  readonly #series = new Map<string, { labels: Labels; value: number }>();
  #collectors: (() => Sample[])[] = [];
  constructor(readonly name: string, readonly help: string) {}

  /** Adds counts kept elsewhere (engine atomics), read at scrape time, to the series with the same labels. */
  collect(read: () => Sample[]): void {
    this.#collectors.push(read);
  }

  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) return; // counters never go down
    const k = key(labels);
    const s = this.#series.get(k);
    if (s) s.value += by;
    else this.#series.set(k, { labels: { ...labels }, value: by });
  }

  get(labels: Labels = {}): number {
    return this.#series.get(key(labels))?.value ?? 0;
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`);
    let series: Iterable<{ labels: Labels; value: number }> = this.#series.values();
    if (this.#collectors.length > 0) {
      const merged = new Map([...this.#series].map(([k, s]) => [k, { labels: s.labels, value: s.value }]));
      for (const read of this.#collectors) {
        let samples: Sample[];
        try {
          samples = read();
        } catch {
          continue; // a collector that cannot read now (module closed) adds nothing to this scrape
        }
        for (const sample of samples) {
          const labels = sample.labels ?? {};
          const k = key(labels);
          const s = merged.get(k);
          if (s) s.value += sample.value;
          else merged.set(k, { labels, value: sample.value });
        }
      }
      series = merged.values();
    }
    for (const s of series) out.push(`${this.name}${formatLabels(s.labels)} ${formatValue(s.value)}`);
  }
}

export class Histogram implements Metric {
  readonly #series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  readonly buckets: readonly number[];
  constructor(readonly name: string, readonly help: string, buckets: number[]) {
    this.buckets = [...buckets].sort((a, b) => a - b);
  }

  observe(labels: Labels, value: number): void {
    const k = key(labels);
    let s = this.#series.get(k);
    if (!s) this.#series.set(k, (s = { labels: { ...labels }, counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    for (const s of this.#series.values()) {
      this.buckets.forEach((le, i) => out.push(`${this.name}_bucket${formatLabels(s.labels, ['le', formatValue(le)])} ${s.counts[i]}`));
      out.push(`${this.name}_bucket${formatLabels(s.labels, ['le', '+Inf'])} ${s.count}`);
      out.push(`${this.name}_sum${formatLabels(s.labels)} ${formatValue(s.sum)}`);
      out.push(`${this.name}_count${formatLabels(s.labels)} ${s.count}`);
    }
  }
}

/** A sample produced at scrape time. */
export interface Sample {
  labels?: Labels;
  value: number;
}

/** A gauge or counter whose values are read from elsewhere when scraped (engine stats, piscina). */
export class Collected implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'gauge' | 'counter',
    private readonly read: () => Sample[],
  ) {}

  render(out: string[]): void {
    let samples: Sample[];
    try {
      samples = this.read();
    } catch {
      return; // a collector that cannot read now (module closed) is left out of this scrape
    }
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`);
    for (const s of samples) out.push(`${this.name}${formatLabels(s.labels ?? {})} ${formatValue(s.value)}`);
  }
}

export class Registry {
  readonly #metrics = new Map<string, Metric>();

  #add<T extends Metric>(metric: T): T {
    if (!NAME.test(metric.name)) throw new TypeError(`bad metric name ${metric.name}`);
    if (this.#metrics.has(metric.name)) throw new TypeError(`metric ${metric.name} registered twice`);
    this.#metrics.set(metric.name, metric);
    return metric;
  }

  counter(name: string, help: string): Counter {
    return this.#add(new Counter(name, help));
  }

  histogram(name: string, help: string, buckets: number[]): Histogram {
    return this.#add(new Histogram(name, help, buckets));
  }

  /** A gauge read at scrape time. */
  gauge(name: string, help: string, read: () => Sample[] | number): Collected {
    return this.#add(new Collected(name, help, 'gauge', () => samples(read())));
  }

  /** A counter kept elsewhere (engine atomics), read at scrape time. */
  counterFrom(name: string, help: string, read: () => Sample[] | number): Collected {
    return this.#add(new Collected(name, help, 'counter', () => samples(read())));
  }

  /** The whole exposition text. */
  render(): string {
    const out: string[] = [];
    for (const metric of this.#metrics.values()) metric.render(out);
    return out.join('\n') + '\n';
  }
}

function samples(value: Sample[] | number): Sample[] {
  return typeof value === 'number' ? [{ value }] : value;
}

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
