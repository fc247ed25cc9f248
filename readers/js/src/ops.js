// The graph ops of spec/FORMAT.md §3.4 with the dtype rules of §3.5. Every op takes graph
// values (NDArray or weak scalar) and normalised attrs, and returns an NDArray.
import { InputError } from './errors.js';
import { GLUON_OPS } from './ops_gluon.js';
import { NPX_OPS } from './ops_npx.js';
import { getitem } from './indexing.js';
import {
  INFO, NDArray, asArray, broadcastIndex, broadcastShapes, cast, convert, floatOf, intRange, isFloat, isScalar,
  normaliseAxes, normaliseAxis, promote, reshape as reshapeTo, roundTo, scalarOnly, transpose as permute,
  weakWith,
} from './ndarray.js';

const kindOf = (dtype) => INFO[dtype].kind;
export function refuseComplex(...dtypes) {
  if (dtypes.some((d) => INFO[d].complex)) throw new InputError('complex values cannot be computed on by this reader');
}

// Element-wise over broadcast inputs (all already of the dtypes fn expects).
export function map(arrays, outDtype, fn) {
  const shape = broadcastShapes(...arrays.map((a) => a.shape));
  const index = arrays.map((a) => broadcastIndex(a.shape, shape));
  const out = new NDArray(outDtype, shape);
  const args = new Array(arrays.length);
  for (let i = 0; i < out.data.length; i++) {
    for (let k = 0; k < arrays.length; k++) args[k] = arrays[k].data[index[k][i]];
    out.data[i] = fn(...args);
  }
  return out;
}

// The dtype two values compute in (§3.5), and whether an integer scalar fits it.
export function computeDtype(values) {
  const arrays = values.filter((v) => !isScalar(v));
  const scalars = values.filter(isScalar);
  if (!arrays.length) return { dtype: scalarOnly(scalars.map((s) => s.kind)), fits: true };
  let dtype = arrays.map((a) => a.dtype).reduce(promote);
  for (const s of scalars) dtype = weakWith(s.kind, dtype);
  let fits = true;
  for (const s of scalars) {
    if (s.kind === 'int' && (kindOf(dtype) === 'i' || kindOf(dtype) === 'u')) {
      const [lo, hi] = intRange(dtype);
      if (s.value < lo || s.value > hi) fits = false;
    }
  }
  return { dtype, fits };
}

export function operands(values, { comparison = false } = {}) {
  const { dtype, fits } = computeDtype(values);
  refuseComplex(dtype);
  if (!fits && !comparison) throw new InputError(`a Python integer scalar does not fit ${dtype}`);
  return { dtype, arrays: values.map((v) => (fits || !isScalar(v) ? asArray(v, dtype) : null)), fits };
}

const big = (dtype) => INFO[dtype].big;
const mul32 = (bits) => (bits === 32 ? (x, y) => Math.imul(x, y) : (x, y) => x * y);

function intPower(x, y, dtype) {
  if (big(dtype)) {
    if (y < 0n) throw new InputError('integers to negative integer powers are not allowed');
    const wrap = (v) => (kindOf(dtype) === 'u' ? BigInt.asUintN(64, v) : BigInt.asIntN(64, v));
    let r = 1n, b = x, e = y;
    while (e > 0n) { if (e & 1n) r = wrap(r * b); b = wrap(b * b); e >>= 1n; }
    return r;
  }
  if (y < 0) throw new InputError('integers to negative integer powers are not allowed');
  const mul = mul32(INFO[dtype].bits);
  let r = 1, b = x, e = y;
  while (e > 0) { if (e % 2) r = convert(mul(r, b), dtype); b = convert(mul(b, b), dtype); e = Math.floor(e / 2); }
  return r;
}

function arithmetic(name, values) {
  if (name === 'divide') {
    const { dtype, arrays } = operands(values);
    const out = isFloat(dtype) ? dtype : 'float64';
    return map(arrays.map((a) => cast(a, out)), out, (x, y) => roundTo(out, x / y));
  }
  if (name === 'power' && values.every((v) => (isScalar(v) ? v.kind === 'bool' : v.dtype === 'bool'))) {
    return arithmetic('power', values.map((v) => asArray(v, 'int8')));
  }
  const { dtype, arrays } = operands(values);
  const kind = kindOf(dtype);
  if (kind === 'b') {
    const fn = { add: (x, y) => x | y, maximum: (x, y) => x | y, multiply: (x, y) => x & y, minimum: (x, y) => x & y }[name];
    if (!fn) throw new InputError(`${name} is not defined on two booleans`);
    return map(arrays, 'bool', fn);
  }
  if (kind === 'f') {
    const op = {
      add: (x, y) => x + y, subtract: (x, y) => x - y, multiply: (x, y) => x * y, power: (x, y) => x ** y,
      maximum: (x, y) => (Number.isNaN(x) || Number.isNaN(y) ? NaN : Math.max(x, y)),
      minimum: (x, y) => (Number.isNaN(x) || Number.isNaN(y) ? NaN : Math.min(x, y)),
    }[name];
    return map(arrays, dtype, (x, y) => roundTo(dtype, op(x, y)));
  }
  if (big(dtype)) {
    const op = {
      add: (x, y) => x + y, subtract: (x, y) => x - y, multiply: (x, y) => x * y, power: (x, y) => intPower(x, y, dtype),
      maximum: (x, y) => (x > y ? x : y), minimum: (x, y) => (x < y ? x : y),
    }[name];
    return map(arrays, dtype, op); // BigInt64Array/BigUint64Array stores wrap modulo 2^64
  }
  const mul = mul32(INFO[dtype].bits);
  const op = {
    add: (x, y) => x + y, subtract: (x, y) => x - y, multiply: mul, power: (x, y) => intPower(x, y, dtype),
    maximum: Math.max, minimum: Math.min,
  }[name];
  return map(arrays, dtype, op); // typed-array stores wrap modulo 2^bits
}

function comparison(name, values) {
  const { dtype } = computeDtype(values);
  refuseComplex(dtype);
  const test = {
    greater: (x, y) => x > y, greater_equal: (x, y) => x >= y, less: (x, y) => x < y,
    less_equal: (x, y) => x <= y, equal: (x, y) => x === y, not_equal: (x, y) => x !== y,
  }[name];
  if (isFloat(dtype)) return map(values.map((v) => asArray(v, dtype)), 'bool', (x, y) => (test(x, y) ? 1 : 0));
  // Integers and booleans compare exactly (promotion keeps their values), even against a
  // scalar that does not fit the dtype.
  const exact = values.map((v) => (isScalar(v) ? asArray(v, 'int64') : v));
  return map(exact, 'bool', (x, y) => (test(BigInt(x), BigInt(y)) ? 1 : 0));
}

export function matmul(values) {
  if (values.some(isScalar)) throw new InputError('matmul needs arrays of at least one dimension');
  let [a, b] = values;
  if (a.ndim === 0 || b.ndim === 0) throw new InputError('matmul needs arrays of at least one dimension');
  const dtype = promote(a.dtype, b.dtype);
  refuseComplex(dtype);
  a = cast(a, dtype);
  b = cast(b, dtype);
  const dropRow = a.ndim === 1, dropCol = b.ndim === 1;
  if (dropRow) a = reshapeTo(a, [1, a.shape[0]]);
  if (dropCol) b = reshapeTo(b, [b.shape[0], 1]);
  const [n, k] = a.shape.slice(-2), [k2, m] = b.shape.slice(-2);
  if (k !== k2) throw new InputError(`matmul: inner sizes ${k} and ${k2} differ`);
  const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const ia = broadcastIndex(a.shape.slice(0, -2), batch), ib = broadcastIndex(b.shape.slice(0, -2), batch);
  const out = new NDArray(dtype, [...batch, n, m]);
  const kind = kindOf(dtype), isBig = big(dtype), mul = mul32(INFO[dtype].bits);
  for (let t = 0; t < ia.length; t++) {
    const oa = ia[t] * n * k, ob = ib[t] * k * m, oo = t * n * m;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        let acc = isBig ? 0n : 0;
        for (let q = 0; q < k; q++) {
          const x = a.data[oa + i * k + q], y = b.data[ob + q * m + j];
          if (kind === 'b') acc = acc | (x & y);
          else if (kind === 'f' || isBig) acc += x * y;
          else acc = convert(acc + mul(x, y), dtype);
        }
        out.data[oo + i * m + j] = kind === 'f' ? roundTo(dtype, acc) : acc;
      }
    }
  }
  let shape = out.shape.slice();
  if (dropCol) shape.splice(shape.length - 1, 1);
  if (dropRow) shape.splice(shape.length - (dropCol ? 1 : 2), 1);
  return reshapeTo(out, shape);
}

// -- unary ops and activations -------------------------------------------------------------------

function unary(name, value) {
  let x = asArray(value);
  refuseComplex(x.dtype);
  const d = x.dtype;
  if (name === 'negative') {
    if (d === 'bool') throw new InputError('negative is not defined on booleans');
    return map([x], d, (v) => (isFloat(d) ? -v : big(d) ? -v : -v));
  }
  if (name === 'abs') return map([x], d, (v) => (big(d) ? (v < 0n ? -v : v) : Math.abs(v)));
  if (name === 'square') {
    if (d === 'bool') x = cast(x, 'int8');
    const e = x.dtype, mul = mul32(INFO[e].bits);
    return map([x], e, (v) => (isFloat(e) ? roundTo(e, v * v) : big(e) ? v * v : mul(v, v)));
  }
  const out = floatOf(d);
  const fn = { exp: Math.exp, log: Math.log, sqrt: Math.sqrt, sin: Math.sin, cos: Math.cos }[name];
  return map([cast(x, out)], out, (v) => roundTo(out, fn(v)));
}

// erf by its Maclaurin series, for 0 <= x < 2.5 (where it converges fast enough).
function erfSeries(x) {
  const x2 = x * x;
  let term = x, sum = x;
  for (let n = 1; n < 200; n++) {
    term *= -x2 / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

export function erfc(x) {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < 2.5) return 1 - erfSeries(x);
  let t = x;
  for (let n = 80; n >= 1; n--) t = x + n / 2 / t;
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / t;
}

export function erf(x) {
  if (Number.isNaN(x) || x === 0) return x; // (keeps -0)
  const a = Math.abs(x);
  return Math.sign(x) * (a < 2.5 ? erfSeries(a) : 1 - erfc(a));
}

const sigmoid = (v) => 1 / (1 + Math.exp(-v));
export const ACTIVATIONS = {
  relu: (v) => Math.max(v, 0),
  sigmoid,
  tanh: Math.tanh,
  softrelu: (v) => (v > 0 ? v + Math.log1p(Math.exp(-v)) : Math.log1p(Math.exp(v))),
  softsign: (v) => v / (1 + Math.abs(v)),
  gelu: (v) => 0.5 * v * erfc(-v / Math.SQRT2),
  silu: (v) => v * sigmoid(v),
};

export function floatInput(value) {
  const x = asArray(value);
  refuseComplex(x.dtype);
  return isFloat(x.dtype) ? x : cast(x, 'float32');
}

export function activation(name, value, alpha) {
  const x = floatInput(value), d = x.dtype;
  let fn = ACTIVATIONS[name];
  if (name === 'leaky_relu') { const a = roundTo(d, alpha); fn = (v) => (v > 0 ? v : v * a); }
  if (name === 'elu') { const a = roundTo(d, alpha); fn = (v) => (v > 0 ? v : a * Math.expm1(v)); }
  return map([x], d, (v) => roundTo(d, fn(v)));
}

// -- reductions ----------------------------------------------------------------------------------

// Rows of the reduced axes: [outShape, keptShape, rows(array) -> Array of value lists].
export function reduceAxes(array, axis) {
  const axes = axis === null ? array.shape.map((_, k) => k) : normaliseAxes(axis, array.ndim);
  const kept = array.shape.map((_, k) => k).filter((k) => !axes.includes(k));
  const moved = permute(array, [...kept, ...axes]);
  const inner = axes.reduce((p, k) => p * array.shape[k], 1);
  const outer = kept.reduce((p, k) => p * array.shape[k], 1);
  return { moved, inner, outer, kept, axes };
}

function reduction(name, value, { axis, keepdims }) {
  const x = asArray(value);
  refuseComplex(x.dtype);
  const d = x.dtype, kind = kindOf(d);
  const { moved, inner, outer, kept, axes } = reduceAxes(x, axis);
  let outDtype = d;
  if (name === 'sum' && kind !== 'f') outDtype = kind === 'u' ? 'uint64' : 'int64';
  if (name === 'mean' && kind !== 'f') outDtype = 'float64';
  if ((name === 'max' || name === 'min') && inner === 0 && outer > 0) throw new InputError(`${name} over an empty axis`);
  const keptShape = kept.map((k) => x.shape[k]);
  const shape = keepdims ? x.shape.map((n, k) => (axes.includes(k) ? 1 : n)) : keptShape;
  const out = new NDArray(outDtype, shape);
  for (let o = 0; o < outer; o++) {
    const row = moved.data.subarray(o * inner, (o + 1) * inner);
    if (name === 'sum' || name === 'mean') {
      let acc = big(outDtype) ? 0n : 0;
      for (const v of row) acc += big(outDtype) ? BigInt(v) : Number(v);
      out.data[o] = name === 'mean' ? roundTo(outDtype, Number(acc) / inner) : kind === 'f' ? roundTo(outDtype, acc) : acc;
    } else {
      let acc = row[0];
      for (const v of row) {
        if (kind === 'f' && (Number.isNaN(v) || Number.isNaN(acc))) { acc = NaN; continue; }
        if (name === 'max' ? v > acc : v < acc) acc = v;
      }
      out.data[o] = acc;
    }
  }
  return out;
}

// softmax / log_softmax (§3.4): x in `dtype` (or as activations convert it) divided by
// `temperature`; with a length input, positions at or past each row's length are masked
// (0 for softmax, −∞ for log_softmax; an empty row is all masked).
function softmaxLike(name, inputs, attrs) {
  const count = attrs.use_length ? 2 : 1;
  if (inputs.length !== count) throw new InputError(`${name} takes ${count} inputs, got ${inputs.length}`);
  let x = floatInput(inputs[0]);
  if (attrs.dtype !== null) x = cast(x, attrs.dtype);
  const d = x.dtype;
  const k = normaliseAxis(attrs.axis, x.ndim);
  const perm = x.shape.map((_, j) => j).filter((j) => j !== k).concat([k]);
  const moved = permute(x, perm);
  const n = x.shape[k];
  let lengths = null;
  if (attrs.use_length) {
    const l = asArray(inputs[1]);
    refuseComplex(l.dtype);
    const want = x.shape.filter((_, j) => j !== k);
    if (l.shape.join() !== want.join()) throw new InputError(`${name}: the length input must have shape (${want.join(', ')})`);
    lengths = Array.from(l.data, (v) => Math.trunc(Number(v)));
  }
  const t = attrs.temperature;
  const out = new NDArray(d, moved.shape.slice());
  for (let o = 0; o * n < moved.data.length; o++) {
    const valid = lengths === null ? n : Math.min(Math.max(lengths[o], 0), n);
    const row = Array.from(moved.data.subarray(o * n, o * n + valid), (v) => (t === null ? v : roundTo(d, v / t)));
    let max = -Infinity;
    for (const v of row) max = Number.isNaN(v) || Number.isNaN(max) ? NaN : Math.max(max, v);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    for (let j = 0; j < n; j++) {
      if (j >= valid) { out.data[o * n + j] = name === 'softmax' ? 0 : -Infinity; continue; }
      const s = row[j] - max;
      out.data[o * n + j] = roundTo(d, name === 'softmax' ? Math.exp(s) / sum : s - Math.log(sum));
    }
  }
  const back = new Array(perm.length);
  perm.forEach((p, j) => { back[p] = j; });
  return permute(out, back);
}

// -- shapes --------------------------------------------------------------------------------------

// Sizes arrive evaluated (§3.3 size expressions are resolved before an op runs).
function reshape(value, target) {
  const x = asArray(value);
  const dims = target.slice();
  const unknown = dims.filter((d) => d === -1).length;
  if (unknown > 1 || dims.some((d) => d < -1)) throw new InputError(`reshape: bad target (${dims.join(', ')})`);
  const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  if (unknown) {
    if (known === 0 || x.size % known) throw new InputError(`cannot reshape ${x.size} elements into (${dims.join(', ')})`);
    dims[dims.indexOf(-1)] = x.size / known;
  } else if (known !== x.size) throw new InputError(`cannot reshape ${x.size} elements into (${dims.join(', ')})`);
  return reshapeTo(x, dims);
}

function join(name, values, axis) {
  if (!values.length) throw new InputError(`${name} needs at least one input`);
  const arrays = values.map((v) => asArray(v));
  const dtype = arrays.map((a) => a.dtype).reduce(promote);
  refuseComplex(dtype);
  let parts = arrays.map((a) => cast(a, dtype));
  const first = parts[0].shape;
  let k;
  if (name === 'stack') {
    if (parts.some((p) => p.shape.join() !== first.join())) throw new InputError('stack: inputs of different shapes');
    k = normaliseAxis(axis, first.length + 1);
    parts = parts.map((p) => reshapeTo(p, [...first.slice(0, k), 1, ...first.slice(k)]));
  } else {
    if (first.length === 0) throw new InputError('concatenate: zero-dimensional inputs');
    k = normaliseAxis(axis, first.length);
    for (const p of parts) {
      if (p.ndim !== first.length || p.shape.some((n, j) => j !== k && n !== first[j])) throw new InputError('concatenate: shapes differ');
    }
  }
  const shape = parts[0].shape.slice();
  shape[k] = parts.reduce((s, p) => s + p.shape[k], 0);
  const out = new NDArray(dtype, shape);
  const outer = shape.slice(0, k).reduce((a, b) => a * b, 1);
  const tail = shape.slice(k + 1).reduce((a, b) => a * b, 1);
  let at = 0;
  for (let o = 0; o < outer; o++) {
    for (const p of parts) {
      const chunk = p.shape[k] * tail;
      out.data.set(p.data.subarray(o * chunk, (o + 1) * chunk), at);
      at += chunk;
    }
  }
  return out;
}

function where(values) {
  const [c, a, b] = values;
  const cond = asArray(c);
  refuseComplex(cond.dtype);
  const { dtype } = computeDtype([a, b]);
  refuseComplex(dtype);
  const { arrays } = operands([a, b]);
  const truth = map([cond], 'bool', (v) => (typeof v === 'bigint' ? v !== 0n : v !== 0) ? 1 : 0);
  return map([truth, arrays[0], arrays[1]], dtype, (t, x, y) => (t ? x : y));
}

// -- the table -------------------------------------------------------------------------------

const ARITY = { where: 3 };
for (const n of ['add', 'subtract', 'multiply', 'divide', 'power', 'maximum', 'minimum', 'matmul', 'greater', 'greater_equal',
  'less', 'less_equal', 'equal', 'not_equal']) ARITY[n] = 2;

export function runOp(op, inputs, attrs) {
  if (Object.hasOwn(GLUON_OPS, op)) return GLUON_OPS[op](inputs, attrs);
  if (Object.hasOwn(NPX_OPS, op)) return NPX_OPS[op](inputs, attrs);
  const arity = ARITY[op] ?? (['concatenate', 'stack', 'getitem', 'softmax', 'log_softmax'].includes(op) ? null : 1);
  if (arity !== null && inputs.length !== arity) throw new InputError(`${op} takes ${arity} inputs, got ${inputs.length}`);
  switch (op) {
    case 'add': case 'subtract': case 'multiply': case 'divide': case 'power': case 'maximum': case 'minimum':
      return arithmetic(op, inputs);
    case 'greater': case 'greater_equal': case 'less': case 'less_equal': case 'equal': case 'not_equal':
      return comparison(op, inputs);
    case 'matmul': return matmul(inputs);
    case 'negative': case 'abs': case 'square': case 'exp': case 'log': case 'sqrt': case 'sin': case 'cos':
      return unary(op, inputs[0]);
    case 'relu': case 'sigmoid': case 'tanh': case 'softrelu': case 'softsign': case 'gelu': case 'silu':
      return activation(op, inputs[0]);
    case 'leaky_relu': case 'elu': return activation(op, inputs[0], attrs.alpha);
    case 'softmax': case 'log_softmax': return softmaxLike(op, inputs, attrs);
    case 'where': return where(inputs);
    case 'concatenate': case 'stack': return join(op, inputs, attrs.axis);
    case 'reshape': return reshape(inputs[0], attrs.shape);
    case 'transpose': {
      const x = asArray(inputs[0]);
      const axes = attrs.axes === null ? x.shape.map((_, k) => x.ndim - 1 - k) : normaliseAxes(attrs.axes, x.ndim);
      if (axes.length !== x.ndim) throw new InputError('transpose: axes are not a permutation');
      return permute(x, axes);
    }
    case 'flatten': {
      const x = asArray(inputs[0]);
      return reshapeTo(x, x.ndim === 0 ? [1, 1] : [x.shape[0], x.shape.slice(1).reduce((a, b) => a * b, 1)]);
    }
    case 'squeeze': {
      const x = asArray(inputs[0]);
      const axes = attrs.axis === null ? x.shape.map((n, k) => (n === 1 ? k : -1)).filter((k) => k >= 0) : normaliseAxes(attrs.axis, x.ndim);
      if (axes.some((k) => x.shape[k] !== 1)) throw new InputError('squeeze: an axis of length other than one');
      return reshapeTo(x, x.shape.filter((_, k) => !axes.includes(k)));
    }
    case 'expand_dims': {
      const x = asArray(inputs[0]);
      const count = Array.isArray(attrs.axis) ? attrs.axis.length : 1;
      const axes = normaliseAxes(attrs.axis, x.ndim + count);
      const shape = [];
      let j = 0;
      for (let k = 0; k < x.ndim + count; k++) shape.push(axes.includes(k) ? 1 : x.shape[j++]);
      return reshapeTo(x, shape);
    }
    case 'cast': return cast(asArray(inputs[0]), attrs.dtype);
    case 'getitem': {
      const count = attrs.index.filter((i) => 'array' in i).length;
      if (inputs.length !== 1 + count) throw new InputError(`getitem with ${count} index arrays takes ${1 + count} inputs, got ${inputs.length}`);
      return getitem(inputs[0], attrs.index, inputs.slice(1));
    }
    case 'sum': case 'mean': case 'max': case 'min': return reduction(op, inputs[0], attrs);
    default: throw new InputError(`unknown op ${op}`);
  }
}

export { isScalar };
