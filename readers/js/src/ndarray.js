// Arrays for running models: a dtype of spec/FORMAT.md §4, a shape, and the values in a typed
// array (64-bit integers as BigInt, float16 as float32 values rounded to float16).
// Conversions and promotion follow §3.5.
import { InputError } from './errors.js';

export const INFO = {
  bool: { kind: 'b', bits: 8, Array: Uint8Array },
  int8: { kind: 'i', bits: 8, Array: Int8Array },
  int16: { kind: 'i', bits: 16, Array: Int16Array },
  int32: { kind: 'i', bits: 32, Array: Int32Array },
  int64: { kind: 'i', bits: 64, Array: BigInt64Array, big: true },
  uint8: { kind: 'u', bits: 8, Array: Uint8Array },
  uint16: { kind: 'u', bits: 16, Array: Uint16Array },
  uint32: { kind: 'u', bits: 32, Array: Uint32Array },
  uint64: { kind: 'u', bits: 64, Array: BigUint64Array, big: true },
  float16: { kind: 'f', bits: 16, Array: Float32Array },
  float32: { kind: 'f', bits: 32, Array: Float32Array },
  float64: { kind: 'f', bits: 64, Array: Float64Array },
  complex64: { kind: 'c', bits: 64, Array: Float32Array, complex: true },
  complex128: { kind: 'c', bits: 128, Array: Float64Array, complex: true },
};

export class NDArray {
  constructor(dtype, shape, data) {
    this.dtype = dtype;
    this.shape = shape;
    this.data = data ?? new INFO[dtype].Array(shape.reduce((a, b) => a * b, 1) * (INFO[dtype].complex ? 2 : 1));
  }
  get size() { return this.shape.reduce((a, b) => a * b, 1); }
  get ndim() { return this.shape.length; }
}

// -- float16 -----------------------------------------------------------------------------------

export function f16round(x) {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 65520) return Math.sign(x) * Infinity;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  if (2 ** (e + 1) <= a) e += 1;
  const quantum = 2 ** (Math.max(e, -14) - 10);
  const scaled = a / quantum;
  let r = Math.floor(scaled);
  const frac = scaled - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r += 1;
  return Math.sign(x) * r * quantum;
}

function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

// The stored bytes of a tensor as an NDArray (a copy: typed arrays need aligned buffers).
export function fromBytes(dtype, shape, bytes) {
  const info = INFO[dtype];
  const copy = new Uint8Array(bytes).buffer;
  if (dtype === 'float16') {
    const halves = new Uint16Array(copy);
    const out = new Float32Array(halves.length);
    for (let i = 0; i < halves.length; i++) out[i] = halfToFloat(halves[i]);
    return new NDArray(dtype, shape, out);
  }
  return new NDArray(dtype, shape, new info.Array(copy));
}

// -- dtypes and promotion (§3.5) ---------------------------------------------------------------

const FLOATS = ['float16', 'float32', 'float64'];
const SIGNED = ['int8', 'int16', 'int32', 'int64'];
const UNSIGNED = ['uint8', 'uint16', 'uint32', 'uint64'];

export function isFloat(dtype) { return INFO[dtype].kind === 'f'; }
export function isInt(dtype) { return INFO[dtype].kind === 'i' || INFO[dtype].kind === 'u'; }

export function floatOf(dtype) {
  if (isFloat(dtype)) return dtype;
  if (['bool', 'int8', 'uint8'].includes(dtype)) return 'float16';
  if (['int16', 'uint16'].includes(dtype)) return 'float32';
  return 'float64';
}

export function promote(a, b) {
  if (a === b) return a;
  if (a === 'bool') return b;
  if (b === 'bool') return a;
  const ka = INFO[a].kind, kb = INFO[b].kind;
  if (ka === 'c' || kb === 'c') {
    const real = (d) => (d === 'complex64' ? 'float32' : d === 'complex128' ? 'float64' : d);
    return promote(real(a), real(b)) === 'float64' ? 'complex128' : 'complex64';
  }
  if (ka === 'f' || kb === 'f') {
    const fa = floatOf(a), fb = floatOf(b);
    return FLOATS.indexOf(fa) > FLOATS.indexOf(fb) ? fa : fb;
  }
  if (ka === kb) return INFO[a].bits >= INFO[b].bits ? a : b;
  const [s, u] = ka === 'i' ? [a, b] : [b, a];
  if (INFO[s].bits > INFO[u].bits) return s;
  if (u === 'uint64') return 'float64';
  return SIGNED[UNSIGNED.indexOf(u) + 1];
}

// A weak scalar from a `scalar` node: {scalar: true, kind: 'bool'|'int'|'float', value}.
export const isScalar = (v) => v && v.scalar === true;
export const scalar = (kind, value) => ({ scalar: true, kind, value });
export const LONE = { bool: 'bool', int: 'int64', float: 'float64' };

export function scalarOnly(kinds) {
  if (kinds.every((k) => k === 'bool')) return 'bool';
  return kinds.includes('float') ? 'float64' : 'int64';
}

export function weakWith(kind, dtype) {
  if (kind === 'bool') return dtype;
  if (kind === 'int') return dtype === 'bool' ? 'int64' : dtype;
  return isFloat(dtype) || INFO[dtype].kind === 'c' ? dtype : 'float64';
}

export function intRange(dtype) {
  const { bits, kind } = INFO[dtype];
  return kind === 'u' ? [0n, 2n ** BigInt(bits) - 1n] : [-(2n ** BigInt(bits - 1)), 2n ** BigInt(bits - 1) - 1n];
}

// -- conversions -------------------------------------------------------------------------------

export function roundTo(dtype, x) {
  if (dtype === 'float32') return Math.fround(x);
  if (dtype === 'float16') return f16round(x);
  return x;
}

// One value (number, bigint or boolean) converted to the representation of `to` (§3.5 cast).
export function convert(x, to) {
  const info = INFO[to];
  if (typeof x === 'boolean') x = x ? 1 : 0;
  if (info.kind === 'b') return (typeof x === 'bigint' ? x !== 0n : x !== 0) ? 1 : 0;
  if (info.kind === 'f') return roundTo(to, Number(x));
  if (info.big) {
    if (typeof x === 'number') x = Number.isFinite(x) ? BigInt(Math.trunc(x)) : 0n;
    return info.kind === 'u' ? BigInt.asUintN(64, x) : BigInt.asIntN(64, x);
  }
  if (typeof x === 'bigint') x = info.kind === 'u' ? BigInt.asUintN(info.bits, x) : BigInt.asIntN(info.bits, x);
  const n = Number(x);
  if (!Number.isFinite(n)) return 0;
  const t = Math.trunc(n);
  const m = 2 ** info.bits;
  let w = ((t % m) + m) % m;
  if (info.kind === 'i' && w >= m / 2) w -= m;
  return w;
}

export function cast(array, dtype) {
  if (array.dtype === dtype) return array;
  if (INFO[array.dtype].complex || INFO[dtype].complex) throw new InputError('complex values cannot be computed on by this reader');
  const out = new NDArray(dtype, array.shape.slice());
  for (let i = 0; i < out.data.length; i++) out.data[i] = convert(array.data[i], dtype);
  return out;
}

// An array from a graph value: arrays as they are, weak scalars as 0-d arrays of `dtype`.
export function asArray(value, dtype) {
  if (!isScalar(value)) return dtype ? cast(value, dtype) : value;
  const to = dtype ?? LONE[value.kind];
  const out = new NDArray(to, []);
  out.data[0] = convert(value.value, to);
  return out;
}

// -- shapes ------------------------------------------------------------------------------------

export function strides(shape) {
  const out = new Array(shape.length);
  let s = 1;
  for (let k = shape.length - 1; k >= 0; k--) { out[k] = s; s *= shape[k]; }
  return out;
}

export function broadcastShapes(...shapes) {
  const n = Math.max(...shapes.map((s) => s.length));
  const out = new Array(n).fill(1);
  for (const s of shapes) {
    for (let k = 0; k < s.length; k++) {
      const j = n - s.length + k;
      if (s[k] === out[j] || s[k] === 1) continue;
      if (out[j] === 1) { out[j] = s[k]; continue; }
      throw new InputError(`shapes (${shapes.map((x) => x.join(', ')).join(') and (')}) do not broadcast`);
    }
  }
  return out;
}

// For each position of `shape`, the flat index into an array of shape `from` broadcast to it.
export function broadcastIndex(from, shape) {
  const size = shape.reduce((a, b) => a * b, 1);
  const index = new Int32Array(size);
  const fs = strides(from);
  const offset = shape.length - from.length;
  const pos = new Array(shape.length).fill(0);
  for (let i = 0; i < size; i++) {
    let flat = 0;
    for (let k = 0; k < from.length; k++) if (from[k] !== 1) flat += pos[k + offset] * fs[k];
    index[i] = flat;
    for (let k = shape.length - 1; k >= 0; k--) { if (++pos[k] < shape[k]) break; pos[k] = 0; }
  }
  return index;
}

export function normaliseAxis(axis, ndim) {
  if (axis < -ndim || axis >= ndim) throw new InputError(`axis ${axis} is out of range for ${ndim} dimensions`);
  return axis < 0 ? axis + ndim : axis;
}

export function normaliseAxes(axis, ndim) {
  const list = (Array.isArray(axis) ? axis : [axis]).map((a) => normaliseAxis(a, ndim));
  if (new Set(list).size !== list.length) throw new InputError('an axis is repeated');
  return list;
}

// Copy with axes permuted: result axis k is input axis perm[k].
export function transpose(array, perm) {
  const shape = perm.map((p) => array.shape[p]);
  const inStrides = strides(array.shape);
  const out = new NDArray(array.dtype, shape);
  const pos = new Array(shape.length).fill(0);
  const step = perm.map((p) => inStrides[p]);
  const width = INFO[array.dtype].complex ? 2 : 1;
  for (let i = 0; i < out.size; i++) {
    let flat = 0;
    for (let k = 0; k < shape.length; k++) flat += pos[k] * step[k];
    for (let c = 0; c < width; c++) out.data[i * width + c] = array.data[flat * width + c];
    for (let k = shape.length - 1; k >= 0; k--) { if (++pos[k] < shape[k]) break; pos[k] = 0; }
  }
  return out;
}

export function reshape(array, shape) {
  return new NDArray(array.dtype, shape, array.data);
}
