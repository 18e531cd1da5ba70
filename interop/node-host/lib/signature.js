'use strict';
// Arguments against a declared signature (R39): a call whose arguments do not fit is
// refused with `bad_arguments` before any library code runs.
//
// A parameter's type is the JSON schema of its description (`params[i].schema`); this host
// checks the wire values strictly, as threadhost does (threadhost/types.py): an `integer`
// takes a msgpack integer only (not `true`, not `5.0`, not `"5"`), a `number` an integer or
// a float, `string`/`boolean`/`null` exactly that type. Supported schema keywords: type
// (one or a list), items, prefixItems, minItems, maxItems, additionalProperties, anyOf,
// enum, const; any other keyword is refused when the adapter is loaded.

const { WireFloat, asInteger, hasNonStringKey, isMap } = require('./codec');

const KNOWN = new Set(['type', 'items', 'prefixItems', 'minItems', 'maxItems',
  'additionalProperties', 'anyOf', 'enum', 'const', 'title', 'description', 'default']);

class BadArguments extends Error {}

function typeName(value) {
  if (value === null) return 'nil';
  if (typeof value === 'boolean') return 'bool';
  if (typeof value === 'bigint' || (typeof value === 'number' && Number.isInteger(value))) return 'int';
  if (value instanceof WireFloat || typeof value === 'number') return 'float';
  if (typeof value === 'string') return 'str';
  if (value instanceof Uint8Array) return 'bin';
  if (Array.isArray(value)) return 'array';
  if (isMap(value)) return 'map';
  return 'ext';
}

const SIMPLE = {
  integer: (v) => asInteger(v) !== null,
  number: (v) => v instanceof WireFloat || asInteger(v) !== null,
  string: (v) => typeof v === 'string',
  boolean: (v) => typeof v === 'boolean',
  null: (v) => v === null,
  array: (v) => Array.isArray(v),
  object: (v) => isMap(v) && !hasNonStringKey(v),
};

/** Throw if `schema` uses a keyword this host does not check (at load time). */
function checkSchema(schema, where) {
  if (schema === true || (isMap(schema) && Object.keys(schema).length === 0)) return;
  if (!isMap(schema)) throw new Error(`${where}: a schema must be a map`);
  for (const key of Object.keys(schema)) {
    if (!KNOWN.has(key)) throw new Error(`${where}: schema keyword ${key} is not supported`);
  }
  const types = schema.type === undefined ? [] : [].concat(schema.type);
  for (const t of types) {
    if (!Object.hasOwn(SIMPLE, t)) throw new Error(`${where}: type ${t} is not supported`);
  }
  if (schema.items !== undefined) checkSchema(schema.items, `${where}.items`);
  if (isMap(schema.additionalProperties)) {
    checkSchema(schema.additionalProperties, `${where}.additionalProperties`);
  }
  for (const s of schema.prefixItems ?? []) checkSchema(s, `${where}.prefixItems`);
  for (const s of schema.anyOf ?? []) checkSchema(s, `${where}.anyOf`);
}

function sameValue(a, b) {
  if (typeName(a) !== typeName(b)) return false;
  if (a instanceof WireFloat || b instanceof WireFloat) return Number(a) === Number(b);
  if (typeName(a) === 'int') return asInteger(a) === asInteger(b);
  return a === b;
}

/** Why `value` does not fit `schema`, or null when it fits. */
function mismatch(schema, value, where) {
  if (schema === true || (isMap(schema) && Object.keys(schema).length === 0)) return null;
  if (schema.anyOf !== undefined) {
    if (schema.anyOf.some((s) => mismatch(s, value, where) === null)) return null;
    return `${where}: ${typeName(value)} fits none of the declared alternatives`;
  }
  if (schema.const !== undefined && !sameValue(schema.const, value)) {
    return `${where}: expected ${JSON.stringify(schema.const)}`;
  }
  if (schema.enum !== undefined && !schema.enum.some((e) => sameValue(e, value))) {
    return `${where}: not one of the declared values`;
  }
  if (schema.type !== undefined) {
    const types = [].concat(schema.type);
    if (!types.some((t) => SIMPLE[t](value))) {
      return `${where}: expected ${types.join(' or ')}, got ${typeName(value)}`;
    }
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) {
      return `${where}: at least ${schema.minItems} items expected`;
    }
    if (schema.maxItems !== undefined && value.length > schema.maxItems) {
      return `${where}: at most ${schema.maxItems} items expected`;
    }
    const prefix = schema.prefixItems ?? [];
    for (let i = 0; i < value.length; i += 1) {
      const item = i < prefix.length ? prefix[i] : schema.items;
      if (item === undefined) continue;
      if (item === false) return `${where}: at most ${prefix.length} items expected`;
      const why = mismatch(item, value[i], `${where}[${i}]`);
      if (why) return why;
    }
  } else if (isMap(value) && isMap(schema.additionalProperties)) {
    for (const [key, item] of Object.entries(value)) {
      const why = mismatch(schema.additionalProperties, item, `${where}[${JSON.stringify(key)}]`);
      if (why) return why;
    }
  }
  return null;
}

/**
 * Bind wire `args` and `kwargs` to the declared `params` of call `label`: the positional
 * argument list for the library (defaults filled in), or throw `BadArguments`.
 */
function bind(label, params, args, kwargs) {
  const positional = params.filter((p) => p.kind !== 'keyword_only');
  if (args.length > positional.length) {
    throw new BadArguments(`${label}() takes ${positional.length} positional argument` +
      `${positional.length === 1 ? '' : 's'} but ${args.length} ` +
      `${args.length === 1 ? 'was' : 'were'} given`);
  }
  const values = new Map();
  args.forEach((value, i) => values.set(positional[i].name, value));
  for (const [key, value] of Object.entries(kwargs)) {
    const param = params.find((p) => p.name === key && p.kind !== 'positional_only');
    if (param === undefined) {
      throw new BadArguments(`${label}() got an unexpected keyword argument ${JSON.stringify(key)}`);
    }
    if (values.has(key)) {
      throw new BadArguments(`${label}() got multiple values for argument ${JSON.stringify(key)}`);
    }
    values.set(key, value);
  }
  const missing = params.filter((p) => p.required && !values.has(p.name)).map((p) => p.name);
  if (missing.length) {
    throw new BadArguments(`${label}() missing required argument` +
      `${missing.length > 1 ? 's' : ''}: ${missing.map((n) => JSON.stringify(n)).join(', ')}`);
  }
  return params.map((p) => {
    if (!values.has(p.name)) return p.default;
    const why = mismatch(p.schema, values.get(p.name), `argument ${JSON.stringify(p.name)}`);
    if (why) throw new BadArguments(`${label}: ${why}`);
    return values.get(p.name);
  });
}

module.exports = { BadArguments, bind, checkSchema, mismatch, typeName };
