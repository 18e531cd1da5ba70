'use strict';
// The adapter: which library functions the host serves, and their description (§4,
// "The adapter description"). It declares the same calls, in the same order and with the
// same signatures, as the Python twin tests/interop_node_adapter.py:Calc, so both have the
// same fingerprint.

const { fingerprint } = require('./fingerprint');
const { checkSchema } = require('./signature');

const INTEGER = { type: 'integer' };

const ADAPTER = {
  adapter: 'calclib:Calc', // MODULE:CLASS: here the library module and the adapter's name
  doc: 'A tiny library: calc(x) = x + 1, and a slow reload.',
  default_policy: null,
  replicable: false,
  verify: false,
  calls: [
    {
      name: 'reload',
      kind: 'slow',
      doc: "Reload the library's state (sleeps RELOAD_SECONDS, default 0.5 s).",
      params: [],
      returns: { type: 'null' },
      startup: true,
      policy: null,
      deadline: null,
      timeout: null,
    },
    {
      name: 'calc',
      kind: 'fast',
      doc: 'Return x + 1.',
      params: [{ name: 'x', kind: 'positional_or_keyword', schema: INTEGER, required: true }],
      returns: INTEGER,
      startup: false,
      policy: null,
      deadline: null,
      timeout: null,
    },
  ],
};

/** The description and its fingerprint; throws when a declaration cannot be checked. */
function load() {
  for (const call of ADAPTER.calls) {
    for (const p of call.params) checkSchema(p.schema, `${call.name}(${p.name})`);
    checkSchema(call.returns, `${call.name} returns`);
    if (call.kind === 'slow' && call.params.length) {
      throw new Error(`${call.name}: slow calls take no parameters`);
    }
  }
  const calls = new Map(ADAPTER.calls.map((c) => [c.name, c]));
  return { description: ADAPTER, calls, fingerprint: fingerprint(ADAPTER.calls) };
}

module.exports = { load };
