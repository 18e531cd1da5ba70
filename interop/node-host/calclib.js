'use strict';
// The hosted library: a tiny stand-in for a thread-hostile one. Every function must be
// called from the thread that called `init` (it throws otherwise, as a real library would
// crash), `reload` blocks that thread (like a long native call), and nothing works before
// `init` or after `uninit`.

const { threadId } = require('node:worker_threads');

let owner = null; // the thread that called init

function onOwner(what) {
  if (owner === null) throw new Error(`${what} before init`);
  if (owner !== threadId) {
    throw new Error(`${what} called from thread ${threadId}, but init ran on thread ${owner}`);
  }
}

function init() {
  if (owner !== null) throw new Error('init called twice');
  owner = threadId;
}

function uninit() {
  onOwner('uninit');
  owner = null;
}

/** x + 1, exact for any integer (numbers beyond 2^53 are BigInt). */
function calc(x) {
  onOwner('calc');
  if (typeof x === 'bigint') return x + 1n;
  return Number.isSafeInteger(x + 1) ? x + 1 : BigInt(x) + 1n;
}

/** Blocks the calling thread for RELOAD_SECONDS (default 0.5 s), like a configuration reload. */
function reload() {
  onOwner('reload');
  const seconds = Number(process.env.RELOAD_SECONDS ?? '0.5');
  if (!(seconds >= 0)) throw new Error(`RELOAD_SECONDS=${process.env.RELOAD_SECONDS} is not a number of seconds`);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, seconds * 1000);
  return null;
}

module.exports = { init, uninit, calc, reload };
