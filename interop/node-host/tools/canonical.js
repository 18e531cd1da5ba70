#!/usr/bin/env node
'use strict';
// Cross-check tool for tests: reads one msgpack array from stdin; for each item prints one
// JSON line: for {"calls": [...]} (an adapter description's calls) the fingerprint this
// host computes, for {"value": V} the canonical JSON text of V (lib/fingerprint.js).
// tests/test_interop_node.py compares both with threadhost's reference implementation.

const fs = require('node:fs');
const { unpack } = require('../lib/codec');
const { canonicalJson, fingerprint } = require('../lib/fingerprint');

const requests = unpack(fs.readFileSync(0));
for (const request of requests) {
  const out = Object.hasOwn(request, 'calls')
    ? fingerprint(request.calls)
    : canonicalJson(request.value);
  process.stdout.write(`${JSON.stringify(out)}\n`);
}
