'use strict';
// The threadhost wire format, version 1 (docs/protocol.md §3, §4, §7, §8), for a host.
//
// A message is two ZeroMQ frames: the header "TH" + version byte, and a msgpack map body.
// @msgpack/msgpack does the msgpack; this module adds what the protocol needs on top:
//
// * msgpack floats stay floats: a float is decoded as a `WireFloat`, so that `5.0` is never
//   taken for the int 5 (an argument declared `int` must refuse it), and `WireFloat` values
//   are encoded as float64 (the canonical form of floats, §3);
// * integers are exact: int64/uint64 values decode as BigInt, so request ids up to 2^64-1
//   survive (R9); integers are encoded in their shortest form, BigInt included;
// * map keys must be strings (R6): a non-string key is kept as a marker key that
//   `hasNonStringKey` finds, so that the message is malformed without losing its id (R22);
// * an ext value is opaque (R49): no built-in extension (such as the timestamp type -1)
//   turns it into an object; it stays an `ExtData` and is encoded again unchanged;
// * every kind's fields are checked against the table of §4 (`checkFields`).

const { Decoder, Encoder, ExtensionCodec } = require('@msgpack/msgpack');

const SIGNATURE = Buffer.from('TH', 'latin1');
const VERSION = 1;
const HEADER = Buffer.from([0x54, 0x48, VERSION]);
const DEFAULT_MAX_SIZE = 1048576; // §7
const MAX_ID = (1n << 64n) - 1n;
const MIN_INT64 = -(1n << 63n);

/** A msgpack float (so that 5.0 and 5 stay different values). */
class WireFloat {
  constructor(value) {
    this.value = Number(value);
  }
  valueOf() {
    return this.value;
  }
  toJSON() {
    return this.value;
  }
}

/** No extension is interpreted: every ext value stays an opaque ExtData (R49). */
class OpaqueExtensions extends ExtensionCodec {
  constructor() {
    super();
    this.builtInEncoders = [];
    this.builtInDecoders = [];
  }
}
const OPAQUE = new OpaqueExtensions();

const NON_STRING_KEY = '\u0000threadhost:non-string-key:';
let nonStringKeys = 0;

class WireDecoder extends Decoder {
  constructor() {
    super({
      useBigInt64: true,
      extensionCodec: OPAQUE,
      mapKeyConverter: (key) => {
        if (typeof key === 'string') return key;
        nonStringKeys += 1;
        return `${NON_STRING_KEY}${nonStringKeys}`;
      },
    });
  }
  readF32() {
    return new WireFloat(super.readF32());
  }
  readF64() {
    return new WireFloat(super.readF64());
  }
}

class WireEncoder extends Encoder {
  constructor() {
    super({ useBigInt64: true, extensionCodec: OPAQUE });
  }
  doEncode(object, depth) {
    if (object instanceof WireFloat) {
      this.encodeNumberAsFloat(object.value);
    } else if (typeof object === 'bigint') {
      if (object < MIN_INT64 || object > MAX_ID) {
        throw new RangeError(`the integer ${object} does not fit in 64 bits`);
      }
      if (object >= -0x80000000n && object < 0x100000000n) {
        this.encodeNumber(Number(object));
      } else {
        this.encodeBigInt64(object);
      }
    } else if (typeof object === 'number' && Number.isInteger(object) &&
               (object >= 0x100000000 || object < -0x80000000)) {
      // the encoder would write these as floats when BigInt support is on
      this.doEncode(BigInt(object), depth);
    } else if (typeof object === 'undefined') {
      this.encodeNil();
    } else {
      super.doEncode(object, depth);
    }
  }
}

const decoder = new WireDecoder();
const encoder = new WireEncoder();

function isMap(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value) &&
    !(value instanceof WireFloat) && !(value instanceof Uint8Array) &&
    Object.getPrototypeOf(value) === Object.prototype;
}

function hasNonStringKey(map) {
  return Object.keys(map).some((key) => key.startsWith(NON_STRING_KEY));
}

/** An integer (not a bool, not a float) as a BigInt, or null. */
function asInteger(value) {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  return null;
}

/** A request id (R9): an integer 0..2^64-1; returned as decoded (number or BigInt). */
function isRequestId(value) {
  const n = asInteger(value);
  return n !== null && n >= 0n && n <= MAX_ID;
}

// The field types of §3.
const TYPES = {
  uint64: isRequestId,
  int: (v) => {
    const n = asInteger(v);
    return n !== null && n >= MIN_INT64 && n < (1n << 63n);
  },
  float: (v) => v instanceof WireFloat || asInteger(v) !== null,
  str: (v) => typeof v === 'string',
  bool: (v) => typeof v === 'boolean',
  map: (v) => isMap(v) && !hasNonStringKey(v),
  array: (v) => Array.isArray(v),
  any: () => true,
};

function optional(type) {
  return (v) => v === null || TYPES[type](v);
}

const REQUIRED = Symbol('required');

// §4: every kind's fields in canonical order, [name, check, default].
const KINDS = {
  call: [['id', TYPES.uint64, REQUIRED], ['method', TYPES.str, REQUIRED],
    ['args', TYPES.array, []], ['kwargs', TYPES.map, {}], ['timeout', optional('float'), null],
    ['fingerprint', optional('str'), null]],
  result: [['id', TYPES.uint64, REQUIRED], ['value', TYPES.any, null]],
  error: [['id', optional('uint64'), REQUIRED], ['code', TYPES.str, REQUIRED],
    ['message', TYPES.str, ''], ['retry_after', optional('float'), null],
    ['remote_type', optional('str'), null], ['traceback', optional('str'), null]],
  describe: [['id', TYPES.uint64, REQUIRED]],
  description: [['id', TYPES.uint64, REQUIRED], ['adapter', TYPES.map, REQUIRED],
    ['fingerprint', TYPES.str, REQUIRED], ['protocol', TYPES.int, 1]],
  maintain: [['id', TYPES.uint64, REQUIRED], ['method', optional('str'), null]],
  maintain_reply: [['id', TYPES.uint64, REQUIRED], ['started', TYPES.bool, REQUIRED],
    ['reason', TYPES.str, ''], ['retry_after', optional('float'), null]],
  status: [['id', TYPES.uint64, REQUIRED]],
  status_reply: [['id', TYPES.uint64, REQUIRED], ['status', TYPES.map, REQUIRED]],
  ping: [['id', TYPES.uint64, REQUIRED]],
  pong: [['id', TYPES.uint64, REQUIRED]],
  ready: [['host_id', TYPES.str, REQUIRED], ['pid', TYPES.int, REQUIRED],
    ['adapter', TYPES.map, REQUIRED], ['fingerprint', TYPES.str, REQUIRED],
    ['proof', optional('str'), null]],
  heartbeat: [['host_id', TYPES.str, ''], ['pid', TYPES.int, 0],
    ['busy_id', optional('uint64'), null], ['busy_for', TYPES.float, new WireFloat(0)],
    ['stranger', TYPES.bool, false]],
  shutdown: [['reason', TYPES.str, '']],
  goodbye: [['host_id', TYPES.str, REQUIRED], ['ok', TYPES.bool, true],
    ['code', optional('str'), null], ['message', TYPES.str, '']],
};

// §5: the error codes.
const ERROR_CODES = new Set(['busy', 'unavailable', 'failed', 'timeout', 'crashed',
  'unknown_call', 'bad_arguments', 'remote_exception', 'protocol', 'version', 'fingerprint',
  'adapter', 'poisoned', 'unfit', 'permission_denied']);

/** A malformed message (§8): `id` is the request id when readable, else null. */
class Malformed extends Error {
  constructor(message, id = null) {
    super(message);
    this.name = 'Malformed';
    this.id = id;
  }
}

/** Another protocol version (R12, R14): dropped unanswered, never acted on. */
class OtherVersion extends Error {}

/**
 * Read two frames into a message `{kind, ...fields}` with every default filled in.
 * Throws `Malformed` (with the id when readable) or `OtherVersion`.
 */
function decodeFrames(frames, maxSize = DEFAULT_MAX_SIZE) {
  if (frames.length !== 2) {
    throw new Malformed(`expected 2 frames (header, body), got ${frames.length}`);
  }
  const [header, body] = frames;
  // R5: the header first, before the body is looked at
  if (header.length !== 3 || !header.subarray(0, 2).equals(SIGNATURE)) {
    throw new Malformed('bad header (not "TH" + a version byte)');
  }
  if (header[2] !== VERSION) {
    throw new OtherVersion(`protocol version ${header[2]} not supported (supported: ${VERSION})`);
  }
  if (body.length > maxSize) { // R16: not decoded
    throw new Malformed(`body of ${body.length} bytes is over the limit of ${maxSize} bytes`);
  }
  if (body.length === 0) throw new Malformed('empty body');
  let raw;
  try {
    raw = decoder.decode(body);
  } catch (err) {
    throw new Malformed(`body is not msgpack: ${err.message}`);
  }
  return checkFields(raw);
}

function checkFields(raw) {
  if (!isMap(raw)) throw new Malformed('body is not a map');
  const id = Object.hasOwn(raw, 'id') && isRequestId(raw.id) ? raw.id : null;
  if (hasNonStringKey(raw)) throw new Malformed('body has a non-string key', id);
  const kind = raw.kind;
  if (typeof kind !== 'string') throw new Malformed('body has no kind', id);
  if (!Object.hasOwn(KINDS, kind)) throw new Malformed(`unknown kind ${JSON.stringify(kind)}`, id);
  const msg = { kind };
  for (const [name, check, fallback] of KINDS[kind]) {
    if (!Object.hasOwn(raw, name)) {
      if (fallback === REQUIRED) throw new Malformed(`${kind} without ${name}`, id);
      msg[name] = fallback;
      continue;
    }
    if (!check(raw[name])) throw new Malformed(`${kind}.${name} has the wrong type`, id);
    msg[name] = raw[name];
  }
  // §5: only the listed codes (R11); an unknown one makes the message malformed.
  if (kind === 'error' && !ERROR_CODES.has(msg.code)) {
    throw new Malformed(`error.code ${JSON.stringify(msg.code)} is not a code of §5`, id);
  }
  return msg; // entries not in the table are ignored (R8)
}

/** Two frames for `{kind, ...fields}` (fields in the caller's order: canonical when given so). */
function encodeFrames(msg) {
  return [HEADER, Buffer.from(encoder.encode(msg))];
}

/** The msgpack bytes of a value (for size checks and tools). */
function pack(value) {
  return Buffer.from(encoder.encode(value));
}

function unpack(bytes) {
  return decoder.decode(bytes);
}

module.exports = {
  DEFAULT_MAX_SIZE, HEADER, MAX_ID, VERSION, KINDS, ERROR_CODES,
  Malformed, OtherVersion, WireFloat,
  asInteger, checkFields, decodeFrames, encodeFrames, hasNonStringKey, isMap, isRequestId,
  pack, unpack,
};
