// The ops added to spec/FORMAT.md §3.4 for Gluon and d2l (NumPy 2 and MXNet 1.9 `npx`
// semantics), each (inputs, attrs) -> one array, or a list of arrays for `split` and
// `topk` with `ret_typ: both`. Size attributes arrive evaluated (§3.3).
import { InputError } from './errors.js';
import {
  INFO, NDArray, asArray, cast, convert, isFloat, normaliseAxis, reshape as reshapeTo, roundTo, strides, transpose as permute,
} from './ndarray.js';

// Refuse an output larger than this reader allocates (§3.4: ops sized by attributes).
export const MAX_ELEMENTS = 2 ** 31;
function allocate(dtype, shape, op) {
  if (shape.some((n) => !Number.isInteger(n) || n < 0)) throw new InputError(`${op}: bad shape (${shape.join(', ')})`);
  const size = shape.reduce((a, b) => a * b, 1);
  if (size > MAX_ELEMENTS) throw new InputError(`${op}: ${size} elements exceed this reader's limit of ${MAX_ELEMENTS}`);
  return new NDArray(dtype, shape);
}

function arity(op, inputs, ...counts) {
  if (!counts.includes(inputs.length)) throw new InputError(`${op} takes ${counts.join(' or ')} inputs, got ${inputs.length}`);
}
const real = (value, op) => {
  const x = asArray(value);
  if (INFO[x.dtype].complex) throw new InputError(`${op}: complex values cannot be computed on by this reader`);
  return x;
};
const axes = (n) => Array.from({ length: n }, (_, k) => k);
const fill = (out, value) => { for (let i = 0; i < out.data.length; i++) out.data[i] = convert(value, out.dtype); return out; };

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

export const GLUON_OPS = {
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
    const out = new NDArray(x.dtype, [x.shape[batchAxis], ...x.shape.slice(2)]);
    for (let n = 0; n < N; n++) {
      if (lengths[n] === 0) throw new InputError('sequence_last: a sequence of length 0 has no last step');
      const at = seqAt(a.axis, lengths[n] - 1, n, N, T, inner);
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
};
