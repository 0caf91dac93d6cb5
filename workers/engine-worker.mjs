// Piscina entry for the transfer workers. Node 20 workers do not inherit `--import tsx`, so this
// bootstrap registers tsx, then loads the TypeScript task module (see .team/HELPERS.md).
import { register } from 'tsx/esm/api';

register();
const mod = await import('./engine-worker.ts');
export default mod.default;
