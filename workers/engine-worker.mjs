// Piscina entry for the transfer workers when the engine runs from source (tests, benchmarks under
// tsx): Node 20 workers do not inherit `--import tsx`, so this registers it, then loads the
// TypeScript task module. A compiled engine (dist/) runs dist/workers/engine-worker.js instead.
import { register } from 'tsx/esm/api';

register();
const mod = await import('./engine-worker.ts');
export default mod.default;
