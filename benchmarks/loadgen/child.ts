// Entry of a load generator child process: receives its share of sessions over IPC, logs them in,
// waits for the coordinator's 'go', runs the scenario and sends back its result. Runs as its own
// process (spawned with --import tsx). Invariants: progress goes out every 500 ms; the process exits
// when it has sent its result or when the IPC channel closes (a dead coordinator leaves no orphan).

import type { FromChild, ToChild, WorkerConfig } from './protocol.ts';
import { ScenarioRunner } from './scenarios.ts';

function send(message: FromChild): void {
  process.send?.(message);
}

let runner: ScenarioRunner | null = null;
let goResolve: ((epochMs: number) => void) | null = null;
const go = new Promise<number>((resolve) => (goResolve = resolve));
let continueResolve: (() => void) | null = null;
const resumed = new Promise<void>((resolve) => (continueResolve = resolve));

async function run(config: WorkerConfig): Promise<void> {
  const r = new ScenarioRunner(config);
  runner = r;
  const progress = setInterval(() => send({ type: 'progress', counters: r.counters }), 500);
  // Churn logs in inside its loop; the other scenarios log every session in before 'go'.
  if (config.scenario === 'idle' && config.checkpointCount > 0) {
    // The first sessions, a pause while the coordinator samples the server, then the rest.
    await r.loginAll(0, config.checkpointCount);
    send({ type: 'checkpoint', counters: r.counters });
    await resumed;
    await r.loginAll(config.checkpointCount, config.count);
  } else if (config.scenario !== 'churn') await r.loginAll();
  send({ type: 'ready', counters: r.counters });
  const epochMs = await go;
  // What this process spends moving the bytes (its logins before 'go' excluded): beside the server's
  // CPU it says how much of a saturated machine the load itself took (cost.ts).
  const cpuAtGo = process.cpuUsage();
  switch (config.scenario) {
    case 'idle':
      await r.idle();
      break;
    case 'storm':
      await r.storm(epochMs);
      break;
    case 'big':
      await r.big(epochMs);
      break;
    case 'churn':
      await r.churn(epochMs);
      break;
  }
  await r.quitAll();
  clearInterval(progress);
  const cpu = process.cpuUsage(cpuAtGo);
  // Disconnect only once the (possibly large) result has left.
  process.send?.({ type: 'result', counters: r.counters, result: r.result, cpuSeconds: (cpu.user + cpu.system) / 1e6 } satisfies FromChild, undefined, {}, () => process.disconnect?.());
}

process.on('message', (message: ToChild) => {
  switch (message.type) {
    case 'config':
      run(message.config).catch((err: Error) => {
        send({ type: 'fatal', message: err.stack ?? err.message });
        process.exit(1);
      });
      break;
    case 'continue':
      continueResolve?.();
      break;
    case 'go':
      goResolve?.(message.epochMs);
      break;
    case 'stop':
      runner?.stop();
      break;
    default:
      send({ type: 'fatal', message: `unknown message ${JSON.stringify(message)}` });
      process.exit(1);
  }
});
process.on('disconnect', () => {
  if (!runner) process.exit(0);
  setTimeout(() => process.exit(0), 100).unref();
});
