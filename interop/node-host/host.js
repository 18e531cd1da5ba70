#!/usr/bin/env node
'use strict';
// A threadhost host in JavaScript for Node.js, written from docs/protocol.md: a second
// implementation of the host role (docs/interop.md). It hosts calclib (calclib.js):
// `calc(x: int) -> int` (fast) and `reload` (slow, a start-up call).
//
//   node host.js --connect tcp://127.0.0.1:6002 [--host-id ID] [--heartbeat 0.5]
//                [--broker-timeout 3] [--max-size 1048576] [--log-level info]
//
// Two threads, as §11 and R40/R41 ask:
// * the main thread owns both sockets: the call socket (DEALER, routing id ID) and the
//   heartbeat socket (DEALER, ID/hb). It decodes and checks every message, answers what
//   needs no library code (`unknown_call`, `bad_arguments`, `protocol`), queues accepted
//   calls in arrival order, sends a heartbeat every interval and listens there for the
//   broker's heartbeats (R51). It never runs library code;
// * the library thread (a worker, lib/library-thread.js) runs init, each call in turn and
//   uninit. A call that blocks it (reload) does not stop the heartbeats.
//
// Exit status: 0 after goodbye(ok=true); 3 the adapter cannot be loaded; 4 init or uninit
// failed; 6 stopped (SIGTERM) before it was ready; 1 an unexpected failure (the library
// thread died).

const path = require('node:path');
const { Worker } = require('node:worker_threads');
const zmq = require('zeromq');
const codec = require('./lib/codec');
const { load } = require('./lib/adapter');
const { bind, BadArguments, mismatch } = require('./lib/signature');

const { WireFloat } = codec;
const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_ADAPTER = 3;
const EXIT_SETUP = 4;
const EXIT_STOPPED = 6;
const CLASS = 'Calc';

// ------------------------------------------------------------------------------ options

const USAGE = `usage: node host.js --connect ENDPOINT [--host-id ID] [--heartbeat SECONDS]
                    [--broker-timeout SECONDS] [--max-size BYTES] [--log-level LEVEL]`;

function parseArgs(argv) {
  const opts = {
    endpoint: process.env.THREADHOST_BACKEND ?? null,
    hostId: `node-host-${process.pid}`,
    heartbeat: 0.5,
    brokerTimeout: 3.0,
    maxSize: codec.DEFAULT_MAX_SIZE,
    logLevel: 'info',
  };
  const numbers = { '--heartbeat': 'heartbeat', '--broker-timeout': 'brokerTimeout', '--max-size': 'maxSize' };
  for (let i = 0; i < argv.length; i += 1) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) usage(`${flag} needs a value`);
      return v;
    };
    if (flag === '--connect' || flag === '--backend') opts.endpoint = value();
    else if (flag === '--host-id') opts.hostId = value();
    else if (flag === '--log-level') opts.logLevel = value().toLowerCase();
    else if (Object.hasOwn(numbers, flag)) {
      const n = Number(value());
      if (!(n > 0) || !Number.isFinite(n)) usage(`${flag} must be a positive number`);
      opts[numbers[flag]] = n;
    } else if (flag === '-h' || flag === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else usage(`unknown argument ${argv[i]}`);
  }
  if (!opts.endpoint) usage('--connect ENDPOINT is required');
  if (!opts.hostId || opts.hostId.endsWith('/hb')) usage('--host-id must be non-empty and not end in /hb');
  if (!Number.isInteger(opts.maxSize)) usage('--max-size must be a whole number of bytes');
  return opts;
}

function usage(problem) {
  process.stderr.write(`${USAGE}\nerror: ${problem}\n`);
  process.exit(2);
}

const LEVELS = { debug: 10, info: 20, warning: 30, error: 40 };
let logLevel = LEVELS.info;

function log(level, text) {
  if (LEVELS[level] < logLevel) return;
  process.stderr.write(`${new Date().toISOString()} node-host[${process.pid}] ${level.toUpperCase()} ${text}\n`);
}

// ------------------------------------------------------------------------------ helpers

/** Sends on one socket one message at a time (zeromq allows one send in progress). */
class Outbox {
  constructor(socket, what) {
    this.socket = socket;
    this.what = what;
    this.chain = Promise.resolve();
  }
  send(frames) {
    this.chain = this.chain.then(() => this.socket.send(frames)).catch((err) => {
      log('debug', `${this.what}: a message was not sent: ${err.message}`);
    });
    return this.chain;
  }
}

/** The library thread: runs one library function at a time, in the order asked. */
class LibraryThread {
  constructor(onDeath) {
    this.seq = 0;
    this.pending = new Map();
    this.ending = false;
    this.worker = new Worker(path.join(__dirname, 'lib', 'library-thread.js'));
    this.worker.on('message', ({ seq, ...outcome }) => {
      const done = this.pending.get(seq);
      this.pending.delete(seq);
      if (done) done(outcome);
    });
    this.worker.on('error', (err) => onDeath(`the library thread failed: ${err.stack ?? err}`));
    this.worker.on('exit', (code) => {
      if (!this.ending) onDeath(`the library thread exited (code ${code})`);
    });
  }
  /** Resolves to {ok: true, value} or {ok: false, error: {type, message, stack}}. */
  run(op, args = []) {
    this.seq += 1;
    const seq = this.seq;
    return new Promise((resolve) => {
      this.pending.set(seq, resolve);
      this.worker.postMessage({ op, seq, args });
    });
  }
  end() {
    this.ending = true;
    return this.worker.terminate();
  }
}

function seconds(ms) {
  return new WireFloat(ms / 1000);
}

// ------------------------------------------------------------------------------ the host

class Host {
  constructor(opts) {
    this.opts = opts;
    this.hostId = opts.hostId;
    this.queue = []; // accepted calls not yet run: {id, name, args}
    this.running = null; // {id, at}: the call on the library thread
    this.stopping = null; // null, 'shutdown' (from the broker) or 'signal' (on its own)
    this.finishing = false;
    this.saidGoodbye = false;
    this.announced = null; // {frames, at}: the ready sent on the call socket (R51)
    this.brokerToken = null;
    this.brokerHeard = null;
    this.callConnected = false; // the call socket's connection is up (its handshake is done)
    this.brokerGone = false;
    this.exitCode = EXIT_OK;
  }

  now() {
    return performance.now();
  }

  async run() {
    const { endpoint } = this.opts;
    // R3: two DEALERs; heartbeats never queue up behind a missing broker
    this.callSock = new zmq.Dealer({ routingId: this.hostId, linger: 2000 });
    this.hbSock = new zmq.Dealer({
      routingId: `${this.hostId}/hb`, linger: 0, sendHighWaterMark: 10, sendTimeout: 0,
    });
    this.calls = new Outbox(this.callSock, 'call socket');
    this.beats = new Outbox(this.hbSock, 'heartbeat socket');
    this.watchEvents(this.callSock, 'call socket', (type) => {
      if (type === 'handshake') this.callConnected = true;
      else if (type === 'disconnect') this.callConnected = false;
    });
    if (logLevel <= LEVELS.debug) this.watchEvents(this.hbSock, 'heartbeat socket');
    this.callSock.connect(endpoint);
    this.hbSock.connect(endpoint);
    this.beatTimer = setInterval(() => this.beat(), this.opts.heartbeat * 1000);
    this.beat();
    this.listenHeartbeats();
    this.library = new LibraryThread((why) => this.die(why));

    let adapter;
    try {
      adapter = load();
    } catch (err) {
      await this.goodbye(false, 'adapter', `cannot load ${CLASS}: ${err.message}`, EXIT_ADAPTER);
      return;
    }
    this.adapter = adapter;
    const init = await this.library.run('init');
    if (!init.ok) {
      await this.goodbye(false, 'remote_exception',
        `${CLASS}.setup failed: ${init.error.type}: ${init.error.message}`, EXIT_SETUP);
      return;
    }
    if (this.stopping) { // stopped (SIGTERM) while it started: it never served (R37)
      this.finishing = true;
      await this.library.run('uninit');
      await this.goodbye(false, 'unavailable', 'stopped before it could start', EXIT_STOPPED);
      return;
    }
    // R37: ready first, on the call socket
    const ready = codec.encodeFrames({
      kind: 'ready', host_id: this.hostId, pid: process.pid,
      adapter: adapter.description, fingerprint: adapter.fingerprint,
    });
    await this.calls.send(ready);
    this.announced = { frames: ready, at: this.now() };
    log('info', `ready on ${endpoint} as ${this.hostId} (fingerprint ${adapter.fingerprint.slice(0, 12)})`);
    await this.serveCalls();
  }

  // -------------------------------------------------------------------- call socket

  async serveCalls() {
    try {
      for await (const frames of this.callSock) {
        if (this.saidGoodbye) break;
        this.onCallSocket(frames);
      }
    } catch (err) {
      if (!this.saidGoodbye) log('debug', `call socket: ${err.message}`);
    }
  }

  onCallSocket(frames) {
    if (this.stopping === 'shutdown') return; // R42: nothing after shutdown is run or answered
    let msg;
    try {
      msg = codec.decodeFrames(frames, this.opts.maxSize);
    } catch (err) {
      if (err instanceof codec.OtherVersion) { // R14: dropped, never acted on
        log('warning', `dropped a message: ${err.message}`);
      } else if (err instanceof codec.Malformed) { // R22
        log('warning', `malformed message: ${err.message}`);
        if (err.id !== null) this.answer(this.error(err.id, 'protocol', `malformed message: ${err.message}`));
      } else {
        throw err;
      }
      return;
    }
    if (msg.kind === 'call') this.onCall(msg);
    else if (msg.kind === 'shutdown') this.onShutdown(msg.reason);
    else if (msg.kind === 'heartbeat') { /* R43: never answered on the call socket */ }
    else log('warning', `ignored a ${msg.kind} message (hosts do not receive it, R10)`);
  }

  onCall(msg) {
    if (this.stopping === 'signal') { // stopping on its own: it will not run (§11)
      this.answer(this.error(msg.id, 'unavailable',
        `unavailable: host ${this.hostId} is stopping; the call did not run`));
      return;
    }
    const decl = this.adapter.calls.get(msg.method);
    if (decl === undefined) { // R39
      this.answer(this.error(msg.id, 'unknown_call', `${CLASS} has no call ${JSON.stringify(msg.method)}`));
      return;
    }
    let args;
    try {
      args = bind(`${CLASS}.${decl.name}`, decl.params, msg.args, msg.kwargs);
    } catch (err) {
      if (!(err instanceof BadArguments)) throw err;
      this.answer(this.error(msg.id, 'bad_arguments', err.message)); // R39: the library is not called
      return;
    }
    this.queue.push({ id: msg.id, name: decl.name, args });
    this.pump();
  }

  /** Start the next queued call on the library thread when it is free (R40). */
  pump() {
    if (this.running !== null) return;
    const job = this.queue.shift();
    if (job === undefined) {
      if (this.stopping) this.teardownAndGoodbye();
      return;
    }
    this.running = { id: job.id, at: this.now() };
    this.library.run(job.name, job.args).then((outcome) => {
      const decl = this.adapter.calls.get(job.name);
      const unfit = outcome.ok ? mismatch(decl.returns, outcome.value, 'the result') : null;
      let answer;
      if (!outcome.ok) {
        answer = this.error(job.id, 'remote_exception', outcome.error.message,
          { remote_type: outcome.error.type, traceback: outcome.error.stack });
      } else if (unfit !== null) { // the library broke its own declaration
        answer = this.error(job.id, 'remote_exception', `${CLASS}.${job.name} returned a value ` +
          `that does not match its declared return type: ${unfit}`, { remote_type: 'TypeError' });
      } else {
        answer = { kind: 'result', id: job.id, value: outcome.value };
      }
      this.running = null;
      this.answer(answer);
      this.pump();
    });
  }

  error(id, code, message, extra = {}) {
    return {
      kind: 'error', id, code, message, retry_after: null,
      remote_type: extra.remote_type ?? null, traceback: extra.traceback ?? null,
    };
  }

  /** Send an answer; one that cannot be encoded or is over the limit becomes an error (R18). */
  answer(msg) {
    if (this.saidGoodbye) return;
    let frames;
    try {
      frames = codec.encodeFrames(msg);
      if (frames[1].length > this.opts.maxSize) {
        throw new RangeError(`it is ${frames[1].length} bytes encoded, over the message size ` +
          `limit of ${this.opts.maxSize} bytes`);
      }
    } catch (err) {
      frames = codec.encodeFrames(this.error(msg.id, 'remote_exception',
        `the result could not be encoded: ${err.message}`, { remote_type: err.name }));
    }
    this.calls.send(frames);
  }

  onShutdown(reason) {
    log('info', `shutdown${reason ? ` (${reason})` : ''}`);
    this.stopping = 'shutdown';
    this.pump(); // finishes the running call (and those received before shutdown) first
  }

  /** SIGTERM/SIGINT: stop on its own; calls not yet run are answered `unavailable` (§11). */
  stopOnOwn(signal) {
    if (this.stopping) return;
    log('info', `${signal}: stopping`);
    this.stopping = 'signal';
    for (const job of this.queue.splice(0)) {
      this.answer(this.error(job.id, 'unavailable',
        `unavailable: host ${this.hostId} is stopping; the call did not run`));
    }
    if (this.announced) this.pump();
    // before ready, run() sees `stopping` once init is done
  }

  async teardownAndGoodbye() {
    if (this.finishing) return;
    this.finishing = true;
    const uninit = await this.library.run('uninit');
    if (uninit.ok) {
      await this.goodbye(true, null, '', EXIT_OK);
    } else {
      await this.goodbye(false, 'remote_exception',
        `${CLASS}.teardown failed: ${uninit.error.type}: ${uninit.error.message}`, EXIT_SETUP);
    }
  }

  /** The last message (R42): heartbeats stop first, nothing is sent after it. */
  async goodbye(ok, code, message, exitCode) {
    if (this.saidGoodbye) return;
    this.finishing = true;
    // a goodbye to a broker that is gone waits for a connection: exit regardless
    setTimeout(() => process.exit(exitCode), 3000).unref();
    clearInterval(this.beatTimer);
    this.hbSock.close();
    if (!ok) log('error', message);
    const frames = codec.encodeFrames({ kind: 'goodbye', host_id: this.hostId, ok, code, message });
    this.saidGoodbye = true;
    await this.calls.send(frames);
    this.exitCode = exitCode;
    log('info', `goodbye (ok=${ok})`);
    await this.library.end();
    this.callSock.close(); // linger: the goodbye still goes out
    process.exitCode = exitCode;
  }

  /** Follow a socket's connection events (logged with --log-level debug). */
  async watchEvents(socket, what, onEvent = () => {}) {
    const events = socket.events; // the observer exists before the socket connects
    try {
      for await (const event of events) {
        onEvent(event.type);
        log('debug', `${what}: ${event.type}${event.address ? ` ${event.address}` : ''}`);
      }
    } catch (err) {
      log('debug', `${what}: no more events (${err.message})`);
    }
  }

  die(why) {
    log('error', why);
    process.exit(EXIT_FAILURE);
  }

  // -------------------------------------------------------------------- heartbeat socket

  beat() {
    if (this.saidGoodbye) return;
    const now = this.now();
    const running = this.running;
    this.beats.send(codec.encodeFrames({
      kind: 'heartbeat', host_id: this.hostId, pid: process.pid,
      busy_id: running ? running.id : null, busy_for: seconds(running ? now - running.at : 0),
    }));
    const timeout = this.opts.brokerTimeout * 1000;
    if (this.brokerHeard !== null && !this.brokerGone && now - this.brokerHeard > timeout) {
      this.brokerGone = true;
      log('warning', `broker gone; waiting for a broker on ${this.opts.endpoint}`);
    }
  }

  async listenHeartbeats() {
    try {
      for await (const frames of this.hbSock) {
        if (this.saidGoodbye) break;
        let msg;
        try {
          msg = codec.decodeFrames(frames, this.opts.maxSize);
        } catch (err) { // R22: nothing is answered on this socket
          log('debug', `heartbeat socket: dropped ${err.message}`);
          continue;
        }
        if (msg.kind === 'heartbeat') this.brokerBeat(msg, this.now());
        else log('debug', `heartbeat socket: ignored a ${msg.kind} message`);
      }
    } catch (err) {
      if (!this.saidGoodbye) log('debug', `heartbeat socket: ${err.message}`);
    }
  }

  /**
   * A broker heartbeat: send ready again (R51) if it is marked stranger (the broker has no
   * ready from this host: e.g. a broker killed before its first heartbeat to us and
   * replaced at once), comes with another token (a new broker), or after a silence longer
   * than the broker timeout. It goes on the call socket, and only while that socket is
   * connected: the broker answers ready with a call there (docs/protocol.md §12).
   */
  brokerBeat(beat, now) {
    if (this.announced === null || this.saidGoodbye) return; // nothing before the first ready
    const last = this.brokerHeard ?? this.announced.at;
    const stranger = beat.stranger === true;
    const newToken = this.brokerToken !== null && beat.host_id !== this.brokerToken;
    const silence = now - last > this.opts.brokerTimeout * 1000;
    if ((stranger || newToken || silence) && !this.callConnected) {
      // The two sockets reconnect independently. A broker that gets ready now adopts the
      // host and sends its first call (the start-up slow call) to the call socket at once:
      // if that socket is not connected yet, the broker's ROUTER cannot route it. So
      // nothing is recorded: the next broker heartbeat decides again, once the call
      // socket is back.
      log('debug', 'a new broker, maybe; ready is sent again once the call socket is connected');
      return;
    }
    this.brokerToken = beat.host_id;
    this.brokerHeard = now;
    if (this.brokerGone) {
      this.brokerGone = false;
      log('info', `a broker is back (token ${beat.host_id})`);
    }
    if (stranger || newToken || silence) {
      const why = newToken ? 'a new broker'
        : stranger ? 'a broker that has no ready from this host' : 'a broker after a silence';
      log('info', `${why} (token ${beat.host_id}): sending ready again`);
      this.calls.send(this.announced.frames);
    }
  }
}

// ------------------------------------------------------------------------------ main

function main() {
  const opts = parseArgs(process.argv.slice(2));
  logLevel = LEVELS[opts.logLevel] ?? LEVELS.info;
  const host = new Host(opts);
  process.on('SIGTERM', () => host.stopOnOwn('SIGTERM'));
  process.on('SIGINT', () => host.stopOnOwn('SIGINT'));
  host.run().catch((err) => host.die(`unexpected failure: ${err.stack ?? err}`));
}

if (require.main === module) main();

module.exports = { Host, parseArgs };
