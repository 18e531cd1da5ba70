#!/usr/bin/env node
'use strict';
// Cross-check tool for tests: runs threadhost's golden vectors (docs/protocol.md §14)
// through this host's codec (lib/codec.js). Reads one msgpack array from stdin, each item
// {frames: [bin, ...], max_size?: int}; writes one msgpack array to stdout, each item
// {ok: true, msg: the decoded message with its defaults, body: the message encoded again}
// or {ok: false, error: "protocol" | "version", id: the readable id or nil}.
// tests/test_interop_node.py compares them with the vectors.

const fs = require('node:fs');
const codec = require('../lib/codec');

const results = codec.unpack(fs.readFileSync(0)).map(({ frames, max_size: maxSize }) => {
  try {
    const msg = codec.decodeFrames(frames.map((f) => Buffer.from(f)), maxSize ?? undefined);
    return { ok: true, msg, body: codec.encodeFrames(msg)[1] };
  } catch (err) {
    if (err instanceof codec.OtherVersion) return { ok: false, error: 'version', id: null };
    if (err instanceof codec.Malformed) return { ok: false, error: 'protocol', id: err.id };
    throw err;
  }
});
process.stdout.write(codec.pack(results));
