// The NumPy-named ops added to spec/FORMAT.md §3.4 for Gluon and d2l (NumPy 2 semantics),
// each (inputs, attrs) -> one array, or a list of arrays for `split`; and the helpers the
// npx ops (ops_npx.js) share. Size attributes arrive evaluated (§3.3).
import { InputError } from './errors.js';
import {
  INFO, NDArray, asArray, broadcastIndex, broadcastShapes, cast, convert, floatOf, isScalar, normaliseAxis,
  reshape as reshapeTo, roundTo, transpose as permute,
} from './ndarray.js';
import { erf, map, matmul, operands, runOp } from './ops.js';

// Refuse an output larger than this reader allocates (§3.4: ops sized by attributes).
export const MAX_ELEMENTS = 2 ** 31;
export function allocate(dtype, shape, op) {
  if (shape.some((n) => !Number.isInteger(n) || n < 0)) throw new InputError(`${op}: bad shape (${shape.join(', ')})`);
  const size = shape.reduce((a, b) => a * b, 1);
  if (size > MAX_ELEMENTS) throw new InputError(`${op}: ${size} elements exceed this reader's limit of ${MAX_ELEMENTS}`);
  return new NDArray(dtype, shape);
}

export function arity(op, inputs, ...counts) {
  if (!counts.includes(inputs.length)) throw new InputError(`${op} takes ${counts.join(' or ')} inputs, got ${inputs.length}`);
}
export const real = (value, op) => {
  const x = asArray(value);
  if (INFO[x.dtype].complex) throw new InputError(`${op}: complex values cannot be computed on by this reader`);
  return x;
};
export const axes = (n) => Array.from({ length: n }, (_, k) => k);
const fill = (out, value) => { for (let i = 0; i < out.data.length; i++) out.data[i] = convert(value, out.dtype); return out; };

// Positions start..stop of axis k.
function sliceAxis(x, k, start, stop) {
  const shape = x.shape.slice();
  shape[k] = stop - start;
  const out = new NDArray(x.dtype, shape);
  const outer = x.shape.slice(0, k).reduce((p, q) => p * q, 1), inner = x.shape.slice(k + 1).reduce((p, q) => p * q, 1);
  for (let o = 0; o < outer; o++) {
    out.data.set(x.data.subarray((o * x.shape[k] + start) * inner, (o * x.shape[k] + stop) * inner), o * shape[k] * inner);
  }
  return out;
}

// Integer indices (truncated toward zero) with their shape.
export function integers(value, op) {
  const x = real(value, op);
  return { shape: x.shape, values: Array.from(x.data, (v) => Math.trunc(Number(v))) };
}

// prod, var, std over the listed axes (§3.5 dtypes: prod widens integers, var/std as mean).
function reduceRows(op, inputs, a) {
  arity(op, inputs, 1);
  const x = real(inputs[0], op);
  const k = kind(x.dtype);
  const d = op === 'prod' ? (k === 'f' ? x.dtype : k === 'u' ? 'uint64' : 'int64') : (k === 'f' ? x.dtype : 'float64');
  const list = a.axis === null ? axes(x.ndim) : (Array.isArray(a.axis) ? a.axis : [a.axis]).map((j) => normaliseAxis(j, x.ndim));
  if (new Set(list).size !== list.length) throw new InputError(`${op}: an axis is repeated`);
  const kept = axes(x.ndim).filter((j) => !list.includes(j));
  const moved = permute(cast(x, d), [...kept, ...list]);
  const inner = list.reduce((p, j) => p * x.shape[j], 1), outer = kept.reduce((p, j) => p * x.shape[j], 1);
  const shape = a.keepdims ? x.shape.map((m, j) => (list.includes(j) ? 1 : m)) : kept.map((j) => x.shape[j]);
  const out = new NDArray(d, shape);
  for (let o = 0; o < outer; o++) {
    const row = moved.data.subarray(o * inner, (o + 1) * inner);
    if (op === 'prod') {
      let acc = INFO[d].big ? 1n : 1;
      for (const v of row) acc = INFO[d].big ? BigInt.asIntN(64, acc * v) : acc * v;
      out.data[o] = INFO[d].big ? convert(acc, d) : roundTo(d, acc);
      continue;
    }
    let mean = 0, sq = 0;
    for (const v of row) mean += v;
    mean /= inner;
    for (const v of row) sq += (v - mean) ** 2;
    const variance = sq / (inner - a.ddof);
    out.data[o] = roundTo(d, op === 'std' ? Math.sqrt(variance) : variance);
  }
  return out;
}

// The position of the first maximum / minimum (a NaN counts as the extreme, as NumPy's).
function argExtreme(op, inputs, a) {
  arity(op, inputs, 1);
  const given = real(inputs[0], op);
  const x = a.axis === null ? flat(given) : given;
  const { moved, n, outer, k } = alongAxis(x, a.axis === null ? 0 : a.axis);
  if (n === 0) throw new InputError(`${op} over an empty axis`);
  const better = op === 'argmax' ? (v, b) => v > b : (v, b) => v < b;
  const shape = a.axis === null ? (a.keepdims ? given.shape.map(() => 1) : []) : (a.keepdims ? x.shape.map((m, j) => (j === k ? 1 : m)) : x.shape.filter((_, j) => j !== k));
  const out = new NDArray('int64', shape);
  for (let o = 0; o < outer; o++) {
    let best = 0;
    for (let j = 0; j < n; j++) {
      const v = moved.data[o * n + j], b = moved.data[o * n + best];
      if (typeof b === 'number' && Number.isNaN(b)) break;
      if ((typeof v === 'number' && Number.isNaN(v)) || better(v, b)) best = j;
    }
    out.data[o] = BigInt(best);
  }
  return out;
}

function like(op, inputs, dtype, value) {
  arity(op, inputs, 1);
  const x = asArray(inputs[0]);
  return fill(new NDArray(dtype ?? x.dtype, x.shape.slice()), value);
}

export const kind = (dtype) => INFO[dtype].kind;
const truth = (v) => (typeof v === 'bigint' ? v !== 0n : v !== 0);

// C's fmod (NumPy's np.fmod): the remainder takes the dividend's sign; an integer divided by 0
// gives 0, a float NaN.
function fmod(x, y, dtype) {
  if (kind(dtype) === 'f') return x % y;
  if (typeof x === 'bigint') return y === 0n ? 0n : x % y;
  return y === 0 ? 0 : x % y;
}

// Ties to even, as np.rint.
function rint(x) {
  if (!Number.isFinite(x) || x === 0) return x;
  const floor = Math.floor(x), rest = x - floor;
  const nearest = rest > 0.5 || (rest === 0.5 && floor % 2 !== 0) ? floor + 1 : floor;
  return nearest === 0 && x < 0 ? -0 : nearest;
}

// The element-wise functions whose result is float_of(input) (§3.5), computed in float64 then
// rounded once.
const FLOAT_FUNCTIONS = {
  tan: Math.tan, arcsin: Math.asin, arccos: Math.acos, arctan: Math.atan, sinh: Math.sinh, cosh: Math.cosh,
  arcsinh: Math.asinh, arccosh: Math.acosh, arctanh: Math.atanh, erf, rint,
};

// Python's floor division and remainder (NumPy's divmod: the remainder takes the divisor's sign).
function divmod(x, y, dtype) {
  if (kind(dtype) === 'f') {
    const r = (v) => roundTo(dtype, v);
    if (y === 0) return [r(x / y), NaN];
    let mod = x % y;
    let div = r(r(x - mod) / y);
    if (mod !== 0) { if ((y < 0) !== (mod < 0)) { mod = r(mod + y); div -= 1; } } else mod = y < 0 ? -0 : 0;
    let floor = 0;
    if (div !== 0) { floor = Math.floor(div); if (div - floor > 0.5) floor += 1; } else floor = r(x / y) < 0 ? -0 : 0;
    return [r(floor), mod];
  }
  if (typeof x === 'bigint') {
    if (y === 0n) return [0n, 0n];
    let q = x / y, m = x % y;
    if (m !== 0n && (m < 0n) !== (y < 0n)) { q -= 1n; m += y; }
    return [q, m];
  }
  if (y === 0) return [0, 0];
  const q = Math.floor(x / y);
  return [q, x - q * y];
}

function elementwise(op, inputs, count, fn) {
  arity(op, inputs, count);
  return fn(...inputs.map((v) => real(v, op)));
}

// Axis `axis` of x moved last: {moved, n, outer, back} where back permutes the result back.
export function alongAxis(x, axis) {
  const k = normaliseAxis(axis, x.ndim);
  const perm = [...axes(x.ndim).filter((j) => j !== k), k];
  const back = new Array(perm.length);
  perm.forEach((p, j) => { back[p] = j; });
  const moved = permute(x, perm);
  return { moved, k, n: x.shape[k], outer: x.size / Math.max(x.shape[k], 1), back, perm };
}

export const flat = (x) => reshapeTo(x, [x.size]);

export const GLUON_OPS = {
  floor_divide(inputs) {
    arity('floor_divide', inputs, 2);
    const { dtype, arrays } = operands(inputs);
    if (dtype === 'bool') return GLUON_OPS.floor_divide(inputs.map((v) => cast(asArray(v), 'int8')));
    return map(arrays, dtype, (x, y) => convert(divmod(x, y, dtype)[0], dtype));
  },
  mod(inputs) {
    arity('mod', inputs, 2);
    const { dtype, arrays } = operands(inputs);
    if (dtype === 'bool') return GLUON_OPS.mod(inputs.map((v) => cast(asArray(v), 'int8')));
    return map(arrays, dtype, (x, y) => convert(divmod(x, y, dtype)[1], dtype));
  },
  logical_and: (inputs) => elementwise('logical_and', inputs, 2, (a, b) => map([a, b], 'bool', (x, y) => (truth(x) && truth(y) ? 1 : 0))),
  logical_or: (inputs) => elementwise('logical_or', inputs, 2, (a, b) => map([a, b], 'bool', (x, y) => (truth(x) || truth(y) ? 1 : 0))),
  logical_not: (inputs) => elementwise('logical_not', inputs, 1, (a) => map([a], 'bool', (x) => (truth(x) ? 0 : 1))),
  logical_xor: (inputs) => elementwise('logical_xor', inputs, 2, (a, b) => map([a, b], 'bool', (x, y) => (truth(x) !== truth(y) ? 1 : 0))),
  fmod(inputs) {
    arity('fmod', inputs, 2);
    const { dtype, arrays } = operands(inputs);
    if (dtype === 'bool') return GLUON_OPS.fmod(inputs.map((v) => cast(asArray(v), 'int8')));
    return map(arrays, dtype, (x, y) => convert(fmod(x, y, dtype), dtype));
  },
  ...Object.fromEntries(Object.entries(FLOAT_FUNCTIONS).map(([op, fn]) => [op, (inputs) => elementwise(op, inputs, 1, (a) => {
    const d = floatOf(a.dtype);
    return map([cast(a, d)], d, (x) => roundTo(d, fn(x)));
  })])),
  expm1: (inputs) => elementwise('expm1', inputs, 1, (a) => { const d = floatOf(a.dtype); return map([cast(a, d)], d, (x) => roundTo(d, Math.expm1(x))); }),
  log1p: (inputs) => elementwise('log1p', inputs, 1, (a) => { const d = floatOf(a.dtype); return map([cast(a, d)], d, (x) => roundTo(d, Math.log1p(x))); }),
  reciprocal: (inputs) => elementwise('reciprocal', inputs, 1, (a) => map([a], a.dtype, (x) => (kind(a.dtype) === 'f' ? roundTo(a.dtype, 1 / x)
    : convert(typeof x === 'bigint' ? (x === 0n ? 0n : 1n / x) : (x === 0 ? 0 : Math.trunc(1 / x)), a.dtype)))),
  sign: (inputs) => elementwise('sign', inputs, 1, (a) => {
    if (a.dtype === 'bool') throw new InputError('sign is not defined on booleans');
    return map([a], a.dtype, (x) => (typeof x === 'bigint' ? (x > 0n ? 1n : x < 0n ? -1n : 0n) : Number.isNaN(x) ? NaN : Math.sign(x)));
  }),
  floor: (inputs) => elementwise('floor', inputs, 1, (a) => (kind(a.dtype) === 'f' ? map([a], a.dtype, Math.floor) : a)),
  ceil: (inputs) => elementwise('ceil', inputs, 1, (a) => (kind(a.dtype) === 'f' ? map([a], a.dtype, Math.ceil) : a)),
  clip(inputs, a) {
    arity('clip', inputs, 1);
    const x = real(inputs[0], 'clip');
    const lo = a.a_min === null ? null : convert(a.a_min, x.dtype), hi = a.a_max === null ? null : convert(a.a_max, x.dtype);
    return map([x], x.dtype, (v) => {
      if (typeof v === 'number' && Number.isNaN(v)) return v;
      let r = v;
      if (lo !== null && r < lo) r = lo;
      if (hi !== null && r > hi) r = hi;
      return r;
    });
  },
  dot(inputs) {
    arity('dot', inputs, 2);
    if (inputs.some((v) => isScalar(v) || v.ndim === 0)) return runOp('multiply', inputs, {});
    const [x, y] = inputs.map((v) => real(v, 'dot'));
    if (y.ndim <= 2) return matmul([x, y]);
    // Sum over x's last axis and y's second-to-last: y as (K, rest) after moving that axis first.
    const k = y.ndim - 2;
    const yPerm = [k, ...axes(y.ndim).filter((j) => j !== k)];
    const rest = yPerm.slice(1).map((j) => y.shape[j]);
    const y2 = reshapeTo(permute(y, yPerm), [y.shape[k], rest.reduce((p, q) => p * q, 1)]);
    const x2 = reshapeTo(x, [x.size / x.shape[x.ndim - 1], x.shape[x.ndim - 1]]);
    return reshapeTo(matmul([x2, y2]), [...x.shape.slice(0, -1), ...rest]);
  },
  split(inputs, a) {
    arity('split', inputs, 1);
    const x = asArray(inputs[0]);
    if (x.ndim === 0) throw new InputError('split needs an input of at least 1 dimension');
    const k = normaliseAxis(a.axis, x.ndim), n = x.shape[k];
    if ((a.sections === null) === (a.indices === null)) throw new InputError('split takes exactly one of sections and indices');
    let cuts;
    if (a.sections !== null) {
      if (n % a.sections) throw new InputError(`split: ${n} does not divide into ${a.sections} equal sections`);
      cuts = Array.from({ length: a.sections + 1 }, (_, j) => (j * n) / a.sections);
    } else cuts = [0, ...a.indices.map((i) => Math.min(Math.max(i < 0 ? i + n : i, 0), n)), n];
    return cuts.slice(0, -1).map((start, j) => sliceAxis(x, k, start, Math.max(start, cuts[j + 1])));
  },
  repeat(inputs, a) {
    arity('repeat', inputs, 1);
    let x = asArray(inputs[0]);
    if (a.axis === null) x = flat(x);
    const k = normaliseAxis(a.axis ?? 0, x.ndim);
    const shape = x.shape.slice();
    shape[k] *= a.repeats;
    const out = allocate(x.dtype, shape, 'repeat');
    const outer = x.shape.slice(0, k).reduce((p, q) => p * q, 1), inner = x.shape.slice(k + 1).reduce((p, q) => p * q, 1);
    let at = 0;
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < x.shape[k]; i++) {
        const from = (o * x.shape[k] + i) * inner;
        for (let r = 0; r < a.repeats; r++) { out.data.set(x.data.subarray(from, from + inner), at); at += inner; }
      }
    }
    return out;
  },
  tile(inputs, a) {
    arity('tile', inputs, 1);
    let x = asArray(inputs[0]);
    const d = Math.max(x.ndim, a.reps.length);
    const reps = [...Array(d - a.reps.length).fill(1), ...a.reps];
    x = reshapeTo(x, [...Array(d - x.ndim).fill(1), ...x.shape]);
    const out = allocate(x.dtype, x.shape.map((n, j) => n * reps[j]), 'tile');
    const pos = new Array(d).fill(0), st = x.shape.map((_, j) => x.shape.slice(j + 1).reduce((p, q) => p * q, 1));
    for (let o = 0; o < out.size; o++) {
      let from = 0;
      for (let j = 0; j < d; j++) from += (pos[j] % x.shape[j]) * st[j];
      out.data[o] = x.data[from];
      for (let j = d - 1; j >= 0; j--) { if (++pos[j] < out.shape[j]) break; pos[j] = 0; }
    }
    return out;
  },
  broadcast_to(inputs, a) {
    arity('broadcast_to', inputs, 1);
    const x = asArray(inputs[0]);
    if (a.shape.length < x.ndim || broadcastShapes(x.shape, a.shape).join() !== a.shape.join()) {
      throw new InputError(`broadcast_to: (${x.shape.join(', ')}) does not broadcast to (${a.shape.join(', ')})`);
    }
    const out = allocate(x.dtype, a.shape, 'broadcast_to');
    const index = broadcastIndex(x.shape, a.shape);
    for (let i = 0; i < out.size; i++) out.data[i] = x.data[index[i]];
    return out;
  },
  arange(inputs, a) {
    arity('arange', inputs, 0);
    if (a.step === 0) throw new InputError('arange: a step of 0');
    const count = Math.max(Math.ceil((a.stop - a.start) / a.step), 0);
    const out = allocate(a.dtype, [count], 'arange');
    for (let i = 0; i < count; i++) out.data[i] = convert(a.start + i * a.step, a.dtype);
    return out;
  },
  zeros_like: (inputs, a) => like('zeros_like', inputs, a.dtype, 0),
  ones_like: (inputs, a) => like('ones_like', inputs, a.dtype, 1),
  full_like: (inputs, a) => like('full_like', inputs, a.dtype, a.value.value),
  prod: (inputs, a) => reduceRows('prod', inputs, a),
  var: (inputs, a) => reduceRows('var', inputs, a),
  std: (inputs, a) => reduceRows('std', inputs, a),
  argmax: (inputs, a) => argExtreme('argmax', inputs, a),
  argmin: (inputs, a) => argExtreme('argmin', inputs, a),
  cumsum(inputs, a) {
    arity('cumsum', inputs, 1);
    let x = real(inputs[0], 'cumsum');
    if (a.axis === null) x = flat(x);
    const d = kind(x.dtype) === 'f' ? x.dtype : kind(x.dtype) === 'u' ? 'uint64' : 'int64';
    const { moved, n, outer, back } = alongAxis(cast(x, d), a.axis ?? 0);
    const out = new NDArray(d, moved.shape.slice());
    for (let o = 0; o < outer; o++) {
      let acc = INFO[d].big ? 0n : 0;
      for (let j = 0; j < n; j++) {
        acc = INFO[d].big ? acc + moved.data[o * n + j] : roundTo(d, acc + moved.data[o * n + j]);
        out.data[o * n + j] = acc;
      }
    }
    return permute(out, back);
  },
  full(inputs, a) {
    arity('full', inputs, 0);
    return fill(allocate(a.dtype, a.shape, 'full'), a.value.value);
  },
  swapaxes(inputs, a) {
    arity('swapaxes', inputs, 1);
    const x = asArray(inputs[0]);
    const i = normaliseAxis(a.axis1, x.ndim), j = normaliseAxis(a.axis2, x.ndim);
    const perm = axes(x.ndim);
    [perm[i], perm[j]] = [perm[j], perm[i]];
    return permute(x, perm);
  },
};
