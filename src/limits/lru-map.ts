// A Map bounded to `capacity` entries that forgets the least recently touched first. Main thread.
// Invariants: get/set/touch/delete are O(1) (a JS Map keeps insertion order; touching re-inserts);
// size never exceeds capacity after set() returns.

export class LruMap<K, V> {
  readonly #map = new Map<K, V>();
  #capacity: number;

  constructor(capacity: number) {
    if (!(capacity >= 1)) throw new RangeError('LruMap: capacity must be ≥ 1');
    this.#capacity = capacity;
  }

  get capacity(): number {
    return this.#capacity;
  }

  /** Changes the bound, forgetting the least recently used entries beyond it. */
  resize(capacity: number): void {
    if (!(capacity >= 1)) throw new RangeError('LruMap: capacity must be ≥ 1');
    this.#capacity = capacity;
    while (this.#map.size > capacity) {
      const oldest = this.#map.keys().next();
      if (oldest.done) break;
      this.#map.delete(oldest.value);
    }
  }

  get size(): number {
    return this.#map.size;
  }

  /** The value, marking it most recently used. */
  get(key: K): V | undefined {
    const value = this.#map.get(key);
    if (value !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, value);
    }
    return value;
  }

  /** The value without changing its age. */
  peek(key: K): V | undefined {
    return this.#map.get(key);
  }

  set(key: K, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.#capacity) {
      const oldest = this.#map.keys().next();
      if (!oldest.done) this.#map.delete(oldest.value);
    }
  }

  delete(key: K): boolean {
    return this.#map.delete(key);
  }
}
