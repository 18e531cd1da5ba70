'use strict';
// Unit tests of the Node.js host's pure parts: `npm test` (node --test), also run by
// tests/test_interop_node.py. The wire behaviour is proven by the conformance kit.

const test = require('node:test');
const assert = require('node:assert/strict');
const codec = require('../lib/codec');
const { bind, BadArguments, mismatch } = require('../lib/signature');
const { canonicalJson, fingerprint, pyFloatRepr } = require('../lib/fingerprint');
const { load } = require('../lib/adapter');

const frames = (body) => [codec.HEADER, codec.pack(body)];

test('floats stay floats and integers stay exact', () => {
  const msg = codec.decodeFrames(frames({ kind: 'call', id: codec.MAX_ID, method: 'calc',
    args: [new codec.WireFloat(5), 5, 2n ** 63n] }));
  assert.equal(msg.id, codec.MAX_ID);
  assert.ok(msg.args[0] instanceof codec.WireFloat);
  assert.equal(msg.args[1], 5);
  assert.equal(msg.args[2], 2n ** 63n);
  assert.equal(codec.pack(new codec.WireFloat(1)).toString('hex'), 'cb3ff0000000000000');
  assert.equal(codec.pack(2 ** 40).toString('hex'), 'cf0000010000000000');
  assert.equal(codec.pack(7n).toString('hex'), '07');
  assert.throws(() => codec.pack(2n ** 64n), RangeError);
});

test('malformed input keeps its readable id', () => {
  const readable = (body) => {
    try {
      codec.decodeFrames(frames(body));
    } catch (err) {
      assert.ok(err instanceof codec.Malformed);
      return err.id;
    }
    assert.fail('not rejected');
  };
  assert.equal(readable({ kind: 'call', id: 31 }), 31);
  assert.equal(readable({ kind: 'frobnicate', id: 32 }), 32);
  assert.equal(readable({ kind: 'call', id: 33, method: 'x', args: {} }), 33);
  assert.equal(readable({ kind: 'call', id: -5, method: 'x' }), null);
  assert.equal(readable({ kind: 'call', id: true, method: 'x' }), null);
  assert.equal(readable({ kind: 'goodbye', host_id: 'h', ok: 0 }), null);
  const intKey = Buffer.from('84a46b696e64a463616c6ca2696409a66d6574686f64a178a66b7761726773810101', 'hex');
  assert.throws(() => codec.decodeFrames([codec.HEADER, intKey]),
    (err) => err instanceof codec.Malformed && err.id === 9);
  assert.throws(() => codec.decodeFrames([Buffer.from('544802', 'hex'), codec.pack({})]),
    codec.OtherVersion);
});

test('arguments are checked strictly against the declared schema', () => {
  const int = { type: 'integer' };
  assert.equal(mismatch(int, 5, 'x'), null);
  assert.equal(mismatch(int, 5n, 'x'), null);
  for (const bad of [true, new codec.WireFloat(5), '5', null, [5], {}]) {
    assert.notEqual(mismatch(int, bad, 'x'), null, `${bad} is not an int`);
  }
  const number = { type: 'number' };
  assert.equal(mismatch(number, 5, 'x'), null);
  assert.equal(mismatch(number, new codec.WireFloat(0.5), 'x'), null);
  assert.notEqual(mismatch(number, false, 'x'), null);
  const optionalList = { anyOf: [{ type: 'array', items: int }, { type: 'null' }] };
  assert.equal(mismatch(optionalList, [1, 2], 'x'), null);
  assert.equal(mismatch(optionalList, null, 'x'), null);
  assert.notEqual(mismatch(optionalList, [1, 'a'], 'x'), null);
  const params = [{ name: 'x', kind: 'positional_or_keyword', schema: int, required: true }];
  assert.deepEqual(bind('calc', params, [1], {}), [1]);
  assert.deepEqual(bind('calc', params, [], { x: 2 }), [2]);
  for (const [args, kwargs] of [[[], {}], [[1, 2], {}], [[1], { x: 1 }], [[], { y: 1 }],
    [[true], {}]]) {
    assert.throws(() => bind('calc', params, args, kwargs), BadArguments);
  }
});

test('the canonical form is Python\'s json.dumps(sort_keys=True, ensure_ascii=True)', () => {
  for (const [x, repr] of [[1, '1.0'], [0.1, '0.1'], [1e-5, '1e-05'], [1e16, '1e+16'],
    [1.5e16, '1.5e+16'], [-0, '-0.0'], [123.456, '123.456'], [1e-4, '0.0001']]) {
    assert.equal(pyFloatRepr(x), repr);
  }
  assert.equal(canonicalJson({ b: [1, new codec.WireFloat(2)], a: 'é\u007f', '\u{1F600}': 0, '\uffff': 1 }),
    '{"a":"\\u00e9\\u007f","b":[1,2.0],"\\uffff":1,"\\ud83d\\ude00":0}');
});

test('the adapter matches its Python twin (tests/interop_node_adapter.py)', () => {
  const adapter = load();
  assert.deepEqual([...adapter.calls.keys()], ['reload', 'calc']);
  assert.equal(adapter.fingerprint, fingerprint(adapter.description.calls));
  assert.match(adapter.fingerprint, /^[0-9a-f]{64}$/);
});
