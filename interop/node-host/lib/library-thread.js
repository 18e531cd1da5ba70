'use strict';
// The library thread: a worker that runs every library call — init, the calls, uninit —
// one at a time, in the order the host sends them (R40). It never touches a socket; the
// main thread keeps sending heartbeats while a call blocks this one (R41).

const { parentPort } = require('node:worker_threads');
const library = require('../calclib');

function describeError(err) {
  const e = err instanceof Error ? err : new Error(String(err));
  return { type: e.constructor?.name ?? 'Error', message: e.message, stack: e.stack ?? String(e) };
}

parentPort.on('message', ({ op, seq, args }) => {
  try {
    if (!Object.hasOwn(library, op) || typeof library[op] !== 'function') {
      throw new Error(`the library has no function ${op}`);
    }
    const value = library[op](...(args ?? []));
    parentPort.postMessage({ seq, ok: true, value: value === undefined ? null : value });
  } catch (err) {
    parentPort.postMessage({ seq, ok: false, error: describeError(err) });
  }
});
