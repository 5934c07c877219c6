/**
 * The writes of one response to one client, in order: a write that answers a call (`afterLog`)
 * waits until the call's row is in the telemetry write-ahead log (`logged`), so a client never sees
 * an answer a kill -9 could lose, and every write after it waits its turn. With nothing waiting, a
 * write runs at once (`step(true)`: in the caller's turn, so it may be corked with its neighbours).
 */
export function writeQueue(logged: () => Promise<void>) {
  let queue: Promise<void> | undefined;
  return (step: (now: boolean) => void, afterLog: boolean): void => {
    if (!afterLog && queue === undefined) return step(true);
    const next = (queue ?? Promise.resolve())
      .then(() => (afterLog ? logged() : undefined))
      .then(() => step(false));
    queue = next;
    void next.then(() => {
      if (queue === next) queue = undefined;
    });
  };
}
