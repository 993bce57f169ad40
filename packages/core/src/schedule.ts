/** Runs `fn` in a later macrotask, on whichever primitive the platform has. */
type Task = () => void;

const g = globalThis as { setImmediate?: (fn: Task) => unknown };

export const macrotask: (fn: Task) => void =
  typeof g.setImmediate === 'function'
    ? (fn) => {
        g.setImmediate!(fn);
      }
    : typeof MessageChannel === 'function'
      ? (() => {
          // setTimeout(0) is clamped to >= 4 ms in browsers; a MessageChannel is not.
          const queue: Task[] = [];
          const channel = new MessageChannel();
          // Typed loosely: Node's MessagePort typings differ from the DOM's.
          (channel.port1 as unknown as { onmessage: () => void }).onmessage = () => queue.shift()?.();
          return (fn: Task) => {
            queue.push(fn);
            channel.port2.postMessage(0);
          };
        })()
      : (fn) => {
          setTimeout(fn, 0);
        };

/** Whether a value is a promise (or any thenable) rather than a plain result. */
export function isThenable<T>(v: T | PromiseLike<T>): v is PromiseLike<T> {
  return typeof (v as { then?: unknown } | undefined)?.then === 'function';
}
