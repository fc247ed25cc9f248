// The ops of spec/FORMAT.md §3.4 named after MXNet 1.9's `npx` operators (and `take`),
// each (inputs, attrs) -> one array, or [values, indices] for `topk` with `ret_typ: both`.
import { InputError } from './errors.js';
import { NDArray, asArray, cast, convert, isFloat, normaliseAxis, promote, reshape as reshapeTo, roundTo, transpose as permute } from './ndarray.js';
import { alongAxis, allocate, arity, axes, flat, integers, kind, real } from './ops_gluon.js';
import { floatInput, map, matmul, operands } from './ops.js';

// Sequence lengths (MXNet's `sequence_*`): one per batch entry, truncated to integers.
function seqLengths(value, batch, steps, op) {
  const x = real(value, op);
  if (x.ndim !== 1 || x.shape[0] !== batch) throw new InputError(`${op}: sequence_length must have shape (${batch})`);
  return Array.from(x.data, (v) => {
    const n = Math.trunc(Number(v));
    if (!(n >= 0 && n <= steps)) throw new InputError(`${op}: a sequence length ${Number(v)} is outside [0, ${steps}]`);
    return n;
  });
}

// (time axis, batch axis, per-step size) of a sequence op's data.
function sequenceLayout(x, axis, op) {
  if (x.ndim < 2) throw new InputError(`${op} needs data of at least 2 dimensions`);
  const batchAxis = axis === 0 ? 1 : 0;
  return { T: x.shape[axis], N: x.shape[batchAxis], inner: x.size / (x.shape[0] * x.shape[1]), batchAxis };
}
const seqAt = (axis, t, n, N, T, inner) => (axis === 0 ? (t * N + n) * inner : (n * T + t) * inner);


export const NPX_OPS = {
  batch_dot(inputs, a) {
    arity('batch_dot', inputs, 2);
    let [x, y] = inputs.map((v) => real(v, 'batch_dot'));
    if (x.ndim < 3 || x.ndim !== y.ndim) throw new InputError('batch_dot needs inputs of equal rank, at least 3');
    const swap = (t) => permute(t, [...axes(t.ndim - 2), t.ndim - 1, t.ndim - 2]);
    if (a.transpose_a) x = swap(x);
    if (a.transpose_b) y = swap(y);
    if (x.shape.slice(0, -2).join() !== y.shape.slice(0, -2).join()) throw new InputError('batch_dot: the leading axes differ');
    return matmul([x, y]);
  },
  fully_connected(inputs, a) {
    arity('fully_connected', inputs, a.no_bias ? 2 : 3);
    let [x, w] = inputs.map((v) => real(v, 'fully_connected'));
    if (w.ndim !== 2) throw new InputError('fully_connected: the weight must be 2-D');
    if (a.num_hidden && a.num_hidden !== w.shape[0]) throw new InputError(`fully_connected: num_hidden ${a.num_hidden}, the weight has ${w.shape[0]} rows`);
    if (a.flatten) {
      if (x.ndim < 1) throw new InputError('fully_connected needs an input of at least 1 dimension');
      x = reshapeTo(x, [x.shape[0], x.size / Math.max(x.shape[0], 1)]);
    }
    if (x.shape[x.ndim - 1] !== w.shape[1]) throw new InputError(`fully_connected: ${x.shape[x.ndim - 1]} input features, the weight ${w.shape[1]}`);
    const y = matmul([x, permute(w, [1, 0])]);
    if (a.no_bias) return y;
    const b = real(inputs[2], 'fully_connected');
    if (b.ndim !== 1 || b.shape[0] !== w.shape[0]) throw new InputError('fully_connected: the bias must have one value per row of the weight');
    const { dtype, arrays } = operands([y, b]);
    return map(arrays, dtype, (p, q) => (kind(dtype) === 'f' ? roundTo(dtype, p + q) : convert(p + q, dtype)));
  },
  take(inputs, a) {
    arity('take', inputs, 2);
    let x = asArray(inputs[0]);
    const idx = integers(inputs[1], 'take');
    if (a.axis === null) x = flat(x);
    const k = normaliseAxis(a.axis ?? 0, x.ndim), n = x.shape[k];
    const pick = (raw) => {
      if (a.mode === 'wrap') return n ? ((raw % n) + n) % n : raw;
      if (a.mode === 'clip') return Math.min(Math.max(raw, 0), n - 1);
      if (raw < -n || raw >= n) throw new InputError(`take: index ${raw} is out of range for length ${n}`);
      return raw < 0 ? raw + n : raw;
    };
    if (n === 0 && idx.values.length) throw new InputError('take: indexing an empty axis');
    const outer = x.shape.slice(0, k).reduce((p, q) => p * q, 1), inner = x.shape.slice(k + 1).reduce((p, q) => p * q, 1);
    const out = new NDArray(x.dtype, [...x.shape.slice(0, k), ...idx.shape, ...x.shape.slice(k + 1)]);
    let at = 0;
    for (let o = 0; o < outer; o++) {
      for (const raw of idx.values) {
        const from = (o * n + pick(raw)) * inner;
        out.data.set(x.data.subarray(from, from + inner), at);
        at += inner;
      }
    }
    return out;
  },
  pick(inputs, a) {
    arity('pick', inputs, 2);
    let x = asArray(inputs[0]);
    const idx = integers(inputs[1], 'pick');
    if (a.axis === null) x = flat(x);
    const { moved, n, outer, k } = alongAxis(x, a.axis ?? 0);
    const kept = x.shape.filter((_, j) => j !== k);
    if (idx.values.length !== outer) throw new InputError(`pick: the index must have shape (${kept.join(', ')})`);
    const shape = a.keepdims ? x.shape.map((m, j) => (j === k ? 1 : m)) : kept;
    const out = new NDArray(x.dtype, shape);
    for (let o = 0; o < outer; o++) {
      const raw = idx.values[o];
      const i = a.mode === 'wrap' ? ((raw % n) + n) % n : Math.min(Math.max(raw, 0), n - 1);
      out.data[o] = moved.data[o * n + i];
    }
    return out;
  },
  one_hot(inputs, a) {
    arity('one_hot', inputs, 1);
    const idx = integers(inputs[0], 'one_hot');
    const out = allocate(a.dtype, [...idx.shape, a.depth], 'one_hot');
    const on = convert(a.on_value, a.dtype), off = convert(a.off_value, a.dtype);
    out.data.fill(off);
    idx.values.forEach((i, o) => { if (i >= 0 && i < a.depth) out.data[o * a.depth + i] = on; });
    return out;
  },
  topk(inputs, a) {
    arity('topk', inputs, 1);
    let x = real(inputs[0], 'topk');
    if (a.axis === null) x = flat(x);
    const { moved, n, outer, back } = alongAxis(x, a.axis ?? 0);
    if (a.k > n) throw new InputError(`topk: k=${a.k} is larger than the axis (${n})`);
    const shape = moved.shape.slice(0, -1);
    const values = new NDArray(x.dtype, [...shape, a.k]), indices = new NDArray(a.dtype, [...shape, a.k]);
    const mask = new NDArray(x.dtype, moved.shape.slice());
    for (let o = 0; o < outer; o++) {
      const order = Array.from({ length: n }, (_, j) => j);
      const v = (j) => moved.data[o * n + j];
      order.sort((p, q) => {
        const d = a.is_ascend ? (v(p) < v(q) ? -1 : v(p) > v(q) ? 1 : 0) : (v(p) > v(q) ? -1 : v(p) < v(q) ? 1 : 0);
        return d || p - q;
      });
      for (let j = 0; j < a.k; j++) {
        values.data[o * a.k + j] = v(order[j]);
        indices.data[o * a.k + j] = convert(order[j], a.dtype);
        mask.data[o * n + order[j]] = convert(1, x.dtype);
      }
    }
    const restore = (t) => permute(t, back);
    if (a.ret_typ === 'value') return restore(values);
    if (a.ret_typ === 'indices') return restore(indices);
    if (a.ret_typ === 'mask') return restore(mask);
    return [restore(values), restore(indices)];
  },
  sequence_mask(inputs, a) {
    arity('sequence_mask', inputs, a.use_sequence_length ? 2 : 1);
    const x = real(inputs[0], 'sequence_mask');
    if (!a.use_sequence_length) return x;
    const { T, N, inner } = sequenceLayout(x, a.axis, 'sequence_mask');
    const lengths = seqLengths(inputs[1], N, T, 'sequence_mask');
    const out = new NDArray(x.dtype, x.shape.slice(), x.data.slice());
    const value = convert(a.value, x.dtype);
    for (let n = 0; n < N; n++) {
      for (let t = lengths[n]; t < T; t++) out.data.fill(value, seqAt(a.axis, t, n, N, T, inner), seqAt(a.axis, t, n, N, T, inner) + inner);
    }
    return out;
  },
  sequence_last(inputs, a) {
    arity('sequence_last', inputs, a.use_sequence_length ? 2 : 1);
    const x = real(inputs[0], 'sequence_last');
    const { T, N, inner, batchAxis } = sequenceLayout(x, a.axis, 'sequence_last');
    const lengths = a.use_sequence_length ? seqLengths(inputs[1], N, T, 'sequence_last') : Array(N).fill(T);
    if (T === 0 && N > 0) throw new InputError('sequence_last: the sequences have no steps');
    const out = new NDArray(x.dtype, [x.shape[batchAxis], ...x.shape.slice(2)]);
    for (let n = 0; n < N; n++) {
      // A length of 0 reads step 0, as MXNet's SequenceLast does (FORMAT.md leaves it open).
      const at = seqAt(a.axis, Math.max(lengths[n] - 1, 0), n, N, T, inner);
      out.data.set(x.data.subarray(at, at + inner), n * inner);
    }
    return out;
  },
  sequence_reverse(inputs, a) {
    arity('sequence_reverse', inputs, a.use_sequence_length ? 2 : 1);
    const x = real(inputs[0], 'sequence_reverse');
    const { T, N, inner } = sequenceLayout(x, 0, 'sequence_reverse');
    const lengths = a.use_sequence_length ? seqLengths(inputs[1], N, T, 'sequence_reverse') : Array(N).fill(T);
    const out = new NDArray(x.dtype, x.shape.slice(), x.data.slice());
    for (let n = 0; n < N; n++) {
      for (let t = 0; t < lengths[n]; t++) {
        const from = seqAt(0, lengths[n] - 1 - t, n, N, T, inner);
        out.data.set(x.data.subarray(from, from + inner), seqAt(0, t, n, N, T, inner));
      }
    }
    return out;
  },
  layer_norm(inputs, a) {
    arity('layer_norm', inputs, 3);
    const [x0, g0, b0] = inputs.map((v) => real(v, 'layer_norm'));
    const dtype = [x0, g0, b0].map((t) => t.dtype).reduce(promote);
    const x = cast(x0, isFloat(dtype) ? dtype : 'float32'), d = x.dtype;
    const { moved, n, outer, back } = alongAxis(x, a.axis);
    if (g0.size !== n || b0.size !== n) throw new InputError(`layer_norm: gamma and beta need ${n} values`);
    const out = new NDArray(d, moved.shape.slice());
    for (let o = 0; o < outer; o++) {
      const row = moved.data.subarray(o * n, (o + 1) * n);
      let mean = 0, variance = 0;
      for (const v of row) mean += v;
      mean /= n;
      for (const v of row) variance += (v - mean) ** 2;
      variance /= n;
      const scale = 1 / Math.sqrt(variance + a.eps);
      for (let j = 0; j < n; j++) out.data[o * n + j] = roundTo(d, (row[j] - mean) * scale * Number(g0.data[j]) + Number(b0.data[j]));
    }
    return permute(out, back);
  },
  embedding(inputs, a) {
    arity('embedding', inputs, 2);
    const idx = integers(inputs[0], 'embedding');
    const w = real(inputs[1], 'embedding');
    if (w.ndim !== 2) throw new InputError('embedding: the weight must be 2-D');
    const rows = a.input_dim || w.shape[0], width = w.shape[1];
    if (rows > w.shape[0] || (a.output_dim && a.output_dim !== width)) throw new InputError('embedding: input_dim/output_dim do not fit the weight');
    const out = new NDArray(w.dtype, [...idx.shape, width]);
    idx.values.forEach((i, o) => {
      if (i < 0 || i >= rows) throw new InputError(`embedding: index ${i} is out of range [0, ${rows})`);
      out.data.set(w.data.subarray(i * width, (i + 1) * width), o * width);
    });
    return out;
  },
  smooth_l1(inputs, a) {
    arity('smooth_l1', inputs, 1);
    const x = floatInput(inputs[0]), d = x.dtype, s2 = a.scalar * a.scalar;
    return map([x], d, (v) => roundTo(d, Math.abs(v) < 1 / s2 ? 0.5 * s2 * v * v : Math.abs(v) - 0.5 / s2));
  },
  lrn(inputs, a) {
    // §3.4: across channels (axis 1), the window from c - floor((size-1)/2) to c + ceil((size-1)/2)
    arity('lrn', inputs, 1);
    const x = floatInput(inputs[0]), d = x.dtype;
    if (x.ndim < 2) throw new InputError(`lrn: needs a channel axis (N, C, ...), got ${x.ndim} axes`);
    const [n, c] = x.shape, inner = x.size / (n * c || 1);
    const before = Math.floor((a.size - 1) / 2), after = Math.ceil((a.size - 1) / 2);
    const out = new NDArray(d, x.shape.slice());
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < c; k++) {
        for (let p = 0; p < inner; p++) {
          let sum = 0;
          for (let j = Math.max(0, k - before); j <= Math.min(c - 1, k + after); j++) {
            const v = Number(x.data[(i * c + j) * inner + p]);
            sum += v * v;
          }
          const at = (i * c + k) * inner + p;
          out.data[at] = roundTo(d, Number(x.data[at]) * Math.pow(a.bias + (a.alpha / a.size) * sum, -a.beta));
        }
      }
    }
    return out;
  },
  dropout(inputs) {
    arity('dropout', inputs, 1);
    return asArray(inputs[0]);
  },
};
