'use strict';
// The adapter fingerprint, computed exactly as threadhost's reference implementation does
// (threadhost/adapter.py `_fingerprint`), so that a proxy generated from a Python adapter
// with the same calls matches this host:
//
//   contract = [{name, kind, params, returns} for each call in declaration order]
//       params:  each declared parameter's description {name, kind, schema, required,
//                default?} with `description` texts removed from `schema`
//       returns: the return schema with `description` texts removed
//   canonical = JSON of {"fingerprint": 1, "calls": contract} with keys sorted by code
//               point, separators "," and ":", no whitespace, every character outside
//               printable ASCII (0x20..0x7e) escaped as \uXXXX (lowercase hex; UTF-16
//               surrogate pairs above U+FFFF), integers in decimal, floats as Python's
//               repr (1.0, 1e-05, 1e+16), NaN/Infinity/-Infinity as such
//   fingerprint = lowercase hex sha256 of the canonical text's ASCII bytes

const crypto = require('node:crypto');
const { WireFloat } = require('./codec');

const FINGERPRINT_VERSION = 1;

/** Python's repr() of a float. */
function pyFloatRepr(x) {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  // shortest round-trip digits, as "d.ddde±x"
  const [mantissa, expText] = x.toExponential().split('e');
  const negative = mantissa.startsWith('-');
  const digits = mantissa.replace('-', '').replace('.', '');
  const exp = Number(expText);
  let out;
  if (exp < -4 || exp >= 16) {
    const frac = digits.slice(1);
    const e = Math.abs(exp) < 10 ? `0${Math.abs(exp)}` : String(Math.abs(exp));
    out = `${digits[0]}${frac ? `.${frac}` : ''}e${exp < 0 ? '-' : '+'}${e}`;
  } else if (exp < 0) {
    out = `0.${'0'.repeat(-exp - 1)}${digits}`;
  } else if (digits.length <= exp + 1) {
    out = `${digits}${'0'.repeat(exp + 1 - digits.length)}.0`;
  } else {
    out = `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  }
  return negative ? `-${out}` : out;
}

/** A JSON string as Python's json.dumps(..., ensure_ascii=True) writes it. */
function pyString(text) {
  return JSON.stringify(text).replace(/[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Compare two strings by Unicode code point (Python's str order). */
function byCodePoint(a, b) {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const ca = ia.next();
    const cb = ib.next();
    if (ca.done || cb.done) return (ca.done ? 0 : 1) - (cb.done ? 0 : 1);
    const d = ca.value.codePointAt(0) - cb.value.codePointAt(0);
    if (d !== 0) return d;
  }
}

/**
 * The canonical JSON text of a value: null, booleans, strings, integers (number or BigInt),
 * floats (a `WireFloat`, or a non-integer number), arrays and plain objects.
 */
function canonicalJson(value) {
  if (value === null || value === undefined) return 'null';
  if (value === true) return 'true';
  if (value === false) return 'false';
  if (typeof value === 'string') return pyString(value);
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof WireFloat) return pyFloatRepr(value.value);
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : pyFloatRepr(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const keys = Object.keys(value).sort(byCodePoint);
    return `{${keys.map((k) => `${pyString(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  throw new TypeError(`cannot put a ${typeof value} into the canonical form`);
}

const VERBATIM = new Set(['default', 'const', 'enum', 'examples']);

/** `schema` without `description` texts (docstrings land there), as the reference does. */
function stripSchemaDocs(schema) {
  if (Array.isArray(schema)) return schema.map(stripSchemaDocs);
  if (schema !== null && typeof schema === 'object' && !(schema instanceof WireFloat)) {
    const out = {};
    for (const [key, value] of Object.entries(schema)) {
      if (key === 'description' && typeof value === 'string') continue;
      out[key] = VERBATIM.has(key) ? value : stripSchemaDocs(value);
    }
    return out;
  }
  return schema;
}

/** The contract the fingerprint covers, from the `calls` of an adapter description. */
function contract(calls) {
  return calls.map((call) => ({
    name: call.name,
    kind: call.kind,
    params: call.params.map((p) => ({ ...p, schema: stripSchemaDocs(p.schema) })),
    returns: stripSchemaDocs(call.returns),
  }));
}

function canonicalText(calls) {
  return canonicalJson({ fingerprint: FINGERPRINT_VERSION, calls: contract(calls) });
}

/** sha256 hex of the canonical form of `calls` (an adapter description's `calls`). */
function fingerprint(calls) {
  return crypto.createHash('sha256').update(canonicalText(calls), 'ascii').digest('hex');
}

module.exports = { canonicalJson, canonicalText, fingerprint, pyFloatRepr, stripSchemaDocs };
