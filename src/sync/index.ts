// Public face of the sync module: per-account directory caches that follow Dropbox's change feed
// (DirectoryCache), shared per account (SyncRegistry). Main thread. Invariant: the FTP layer needs
// nothing else from src/sync/.

export { DirectoryCache, type DirectoryCacheOptions, type DirectoryCacheStats } from './directory-cache.ts';
export { normalizePath, type CacheEntry, type RawMetadata } from './entry.ts';
export { SyncRegistry, type SyncAccount, type SyncRegistryOptions } from './registry.ts';
export type { CacheChange, ChangeListener } from './subscribers.ts';
