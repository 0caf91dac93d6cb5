// Preloaded (NODE_OPTIONS=--import) into a compiled server by dist-runtime.test.ts: fails and records
// any import of tsx or esbuild, or of a TypeScript file, in this process and, by NODE_OPTIONS, in its
// child processes. Main thread of each process (the hooks thread runs resolve()).
import { appendFileSync } from 'node:fs';
import { register } from 'node:module';
import { isMainThread } from 'node:worker_threads';

if (isMainThread) register(import.meta.url);

export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context);
  if (/(^|[/\\])(tsx|esbuild)([/\\@]|$)/.test(specifier) || /[/\\]node_modules[/\\](tsx|esbuild)[/\\]/.test(result.url) || result.url.endsWith('.ts')) {
    const line = `${process.pid} ${specifier} -> ${result.url}\n`;
    if (process.env.FORBID_LOADER_LOG) appendFileSync(process.env.FORBID_LOADER_LOG, line);
    throw new Error(`forbid-loader: a compiled server imported ${specifier} (${result.url})`);
  }
  return result;
}
