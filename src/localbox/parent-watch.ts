// Notices that the process which spawned this one (the gateway) is gone, even when it died by
// kill -9: the IPC channel's 'disconnect', plus a poll of process.ppid, which changes to the
// reaper's pid the moment the parent dies. Runs on the local box child's main thread. Invariant:
// `onGone` runs at most once; the poll timer never keeps the process alive.

const POLL_MS = 200;

/** Calls onGone once when the parent dies or drops the IPC channel; returns the remover. */
export function watchParent(onGone: (why: 'disconnect' | 'reparented') => void): () => void {
  const parentPid = process.ppid;
  let done = false;
  const fire = (why: 'disconnect' | 'reparented'): void => {
    if (done) return;
    done = true;
    remove();
    onGone(why);
  };
  const onDisconnect = (): void => fire('disconnect');
  const timer = setInterval(() => {
    if (process.ppid !== parentPid) fire('reparented');
  }, POLL_MS);
  timer.unref();
  process.on('disconnect', onDisconnect);
  const remove = (): void => {
    clearInterval(timer);
    process.off('disconnect', onDisconnect);
  };
  return remove;
}
