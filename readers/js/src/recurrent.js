// The recurrent layers and cells of spec/FORMAT.md §3.2 at inference: the fused RNN, LSTM
// and GRU over a whole sequence, and the cells one step at a time. Values are structures:
// arrays, and tuples/lists as JS arrays tagged with `kind` (§3.3 trees).
import { InputError, ShapeMismatchError } from './errors.js';
import { INFO, NDArray, asArray, cast, roundTo, transpose } from './ndarray.js';
import { ACTIVATIONS, runOp } from './ops.js';

const tagged = (kind, items) => Object.assign(items, { kind });
const shapeOf = (x) => `(${x.shape.join(', ')})`;

function toDtype(x, dtype, what) {
  if (!(x instanceof NDArray)) throw new InputError(`${what} must be an array`);
  if (INFO[x.dtype].complex) throw new InputError(`${what}: complex values cannot be computed on by this reader`);
  return cast(asArray(x), dtype);
}

// One step of one row: the new states from input row x and states (h, and c for an LSTM).
// Sums run in float64; each gate, state and output is rounded to the compute dtype.
function stepRow(kind, w, x, h, c, opts) {
  const { dtype } = opts;
  const r = (v) => roundTo(dtype, v);
  const G = w.bih.length, H = w.H;
  const gi = new Float64Array(G), gh = new Float64Array(G);
  for (let g = 0; g < G; g++) {
    let a = 0, b = 0;
    for (let k = 0; k < x.length; k++) a += x[k] * w.ih[g * x.length + k];
    for (let k = 0; k < h.length; k++) b += h[k] * w.hh[g * h.length + k];
    gi[g] = r(a + w.bih[g]);
    gh[g] = r(b + w.bhh[g]);
  }
  const hNew = new Float64Array(H);
  if (kind === 'RNN') {
    const act = ACTIVATIONS[opts.activation];
    for (let j = 0; j < H; j++) hNew[j] = r(act(r(gi[j] + gh[j])));
    return { h: hNew, out: hNew };
  }
  if (kind === 'GRU') {
    const sig = ACTIVATIONS.sigmoid;
    for (let j = 0; j < H; j++) {
      const rr = r(sig(r(gi[j] + gh[j]))), z = r(sig(r(gi[H + j] + gh[H + j])));
      const n = r(Math.tanh(r(gi[2 * H + j] + r(rr * gh[2 * H + j]))));
      hNew[j] = r(r((1 - z) * n) + r(z * h[j]));
    }
    return { h: hNew, out: hNew };
  }
  const act = ACTIVATIONS[opts.activation], rec = ACTIVATIONS[opts.recurrent_activation];
  const cNew = new Float64Array(H);
  for (let j = 0; j < H; j++) {
    const i = r(rec(r(gi[j] + gh[j]))), f = r(rec(r(gi[H + j] + gh[H + j])));
    const g = r(act(r(gi[2 * H + j] + gh[2 * H + j]))), o = r(rec(r(gi[3 * H + j] + gh[3 * H + j])));
    let cj = r(r(f * c[j]) + r(i * g));
    if (opts.clip) {
      if (Number.isNaN(cj)) cj = opts.clipNan ? opts.clipMin : cj;
      else cj = Math.min(Math.max(cj, opts.clipMin), opts.clipMax);
    }
    cNew[j] = cj;
    hNew[j] = r(o * r(act(cj)));
  }
  if (!w.hr) return { h: hNew, c: cNew, out: hNew };
  const P = w.hr.length / H, proj = new Float64Array(P);
  for (let p = 0; p < P; p++) {
    let a = 0;
    for (let j = 0; j < H; j++) a += hNew[j] * w.hr[p * H + j];
    proj[p] = r(a);
  }
  return { h: proj, c: cNew, out: proj };
}

// -- the fused layers (RNN, LSTM, GRU) -----------------------------------------------------

function lengthsOf(value, N, T, type) {
  const x = asArray(value);
  if (!(value instanceof NDArray) || x.ndim !== 1 || x.shape[0] !== N) throw new InputError(`${type}: sequence_length must have shape (${N})`);
  return Array.from(x.data, (v) => {
    const n = Math.trunc(Number(v));
    if (!(n >= 0 && n <= T)) throw new InputError(`${type}: a sequence length ${Number(v)} is outside [0, ${T}]`);
    return n;
  });
}

function fused(block, args) {
  const type = block.node.type, c = block.node.config, dtype = c.dtype;
  const withLengths = c.use_sequence_length;
  const expected = withLengths ? [3] : [1, 2];
  if (!expected.includes(args.length)) throw new InputError(`${type} takes ${expected.join(' or ')} arguments, got ${args.length}`);
  let x = toDtype(args[0], dtype, `${type} input`);
  if (x.ndim !== 3) throw new InputError(`${type} expects a 3-D ${c.layout} input, got shape ${shapeOf(x)}`);
  if (c.layout === 'NTC') x = transpose(x, [1, 0, 2]);
  const [T, N] = x.shape;
  const dirs = c.bidirectional ? 2 : 1, H = c.hidden_size, P = c.projection_size ?? null, Hout = P ?? H;
  const lstm = type === 'LSTM';
  const given = args[1] ?? null;
  const count = lstm ? 2 : 1;
  const states = [];
  if (given !== null) {
    if (!Array.isArray(given) || given.length !== count) throw new InputError(`${type} states must be a list of ${count} arrays`);
    given.forEach((s, k) => {
      const want = [c.num_layers * dirs, N, k === 0 ? Hout : H];
      const a = toDtype(s, dtype, `${type} state ${k}`);
      if (a.shape.join() !== want.join()) throw new InputError(`${type} state ${k} must have shape (${want.join(', ')}), got ${shapeOf(a)}`);
      states.push(a);
    });
  }
  const lengths = withLengths ? lengthsOf(args[2], N, T, type) : Array(N).fill(T);
  const hOut = new NDArray(dtype, [c.num_layers * dirs, N, Hout]), cOut = new NDArray(dtype, [c.num_layers * dirs, N, H]);
  const opts = {
    dtype, activation: type === 'RNN' ? c.activation : 'tanh', recurrent_activation: 'sigmoid',
    clip: lstm && c.state_clip_min !== null && c.state_clip_max !== null, clipMin: roundTo(dtype, c.state_clip_min ?? 0),
    clipMax: roundTo(dtype, c.state_clip_max ?? 0), clipNan: lstm && c.state_clip_nan,
  };
  let input = x;
  for (let k = 0; k < c.num_layers; k++) {
    const C = input.shape[2];
    const out = new NDArray(dtype, [T, N, dirs * Hout]);
    for (let d = 0; d < dirs; d++) {
      const name = `${d ? 'r' : 'l'}${k}_`;
      const p = (n) => block.params.get(name + n);
      if (p('i2h_weight').shape[1] !== C) throw new ShapeMismatchError(`${type}: input has ${C} features, the weight ${p('i2h_weight').shape[1]}`);
      const w = {
        H, ih: p('i2h_weight').data, hh: p('h2h_weight').data, bih: p('i2h_bias').data, bhh: p('h2h_bias').data,
        hr: P !== null ? p('h2r_weight').data : null,
      };
      const layer = k * dirs + d;
      for (let n = 0; n < N; n++) {
        let h = states.length ? Float64Array.from(states[0].data.subarray((layer * N + n) * Hout, (layer * N + n + 1) * Hout)) : new Float64Array(Hout);
        let cs = lstm ? (states.length ? Float64Array.from(states[1].data.subarray((layer * N + n) * H, (layer * N + n + 1) * H)) : new Float64Array(H)) : null;
        for (let s = 0; s < lengths[n]; s++) {
          const t = d ? lengths[n] - 1 - s : s;
          const row = input.data.subarray((t * N + n) * C, (t * N + n + 1) * C);
          const next = stepRow(type, w, row, h, cs, opts);
          h = next.h;
          cs = next.c ?? null;
          out.data.set(next.out, (t * N + n) * dirs * Hout + d * Hout);
        }
        hOut.data.set(h, (layer * N + n) * Hout);
        if (lstm) cOut.data.set(cs, (layer * N + n) * H);
      }
    }
    input = out;
  }
  const output = c.layout === 'NTC' ? transpose(input, [1, 0, 2]) : input;
  if (given === null) return output;
  return tagged('tuple', [output, tagged('list', lstm ? [hOut, cOut] : [hOut])]);
}

// -- the cells -----------------------------------------------------------------------------

const CELL_GATES = { RNNCell: 'RNN', LSTMCell: 'LSTM', GRUCell: 'GRU' };

function stateCount(block) {
  const type = block.node.type;
  if (type === 'LSTMCell') return 2;
  if (type === 'RNNCell' || type === 'GRUCell') return 1;
  if (type === 'DropoutCell') return 0;
  return [...block.children.values()].reduce((n, child) => n + stateCount(child), 0);
}

// A cell's call: (x, [states]) -> (output, [states]); without states they start at zero.
function cellArgs(block, args) {
  const type = block.node.type;
  if (args.length < 1 || args.length > 2 || !(args[0] instanceof NDArray)) throw new InputError(`${type} takes an input array and a list of states`);
  const states = args[1] ?? null;
  const count = stateCount(block);
  if (states !== null && (!Array.isArray(states) || states.length !== count)) throw new InputError(`${type} takes a list of ${count} states`);
  return [args[0], states];
}

function gatedCell(block, args) {
  const type = block.node.type, c = block.node.config, dtype = c.dtype, H = c.hidden_size;
  const [input, given] = cellArgs(block, args);
  const x = toDtype(input, dtype, `${type} input`);
  if (x.ndim !== 2) throw new InputError(`${type} expects a 2-D (N, C) input, got shape ${shapeOf(x)}`);
  const [N, C] = x.shape;
  const p = (n) => block.params.get(n);
  if (p('i2h_weight').shape[1] !== C) throw new ShapeMismatchError(`${type}: input has ${C} features, the weight ${p('i2h_weight').shape[1]}`);
  const states = (given ?? []).map((s, k) => {
    const a = toDtype(s, dtype, `${type} state ${k}`);
    if (a.shape.join() !== [N, H].join()) throw new InputError(`${type} state ${k} must have shape (${N}, ${H}), got ${shapeOf(a)}`);
    return a;
  });
  const kind = CELL_GATES[type], lstm = kind === 'LSTM';
  const w = { H, ih: p('i2h_weight').data, hh: p('h2h_weight').data, bih: p('i2h_bias').data, bhh: p('h2h_bias').data, hr: null };
  const opts = { dtype, activation: c.activation, recurrent_activation: c.recurrent_activation, clip: false };
  const h = new NDArray(dtype, [N, H]), cs = new NDArray(dtype, [N, H]);
  for (let n = 0; n < N; n++) {
    const row = (a) => (a ? Float64Array.from(a.data.subarray(n * H, (n + 1) * H)) : new Float64Array(H));
    const next = stepRow(kind, w, x.data.subarray(n * C, (n + 1) * C), row(states[0]), lstm ? row(states[1]) : null, opts);
    h.data.set(next.h, n * H);
    if (lstm) cs.data.set(next.c, n * H);
  }
  return tagged('tuple', [h, tagged('list', lstm ? [h, cs] : [h])]);
}

function sequentialCell(block, args, call) {
  const [input, given] = cellArgs(block, args);
  let x = input, at = 0;
  const states = [];
  for (const child of block.children.values()) {
    const count = stateCount(child);
    const [y, next] = call(child, [x, given === null ? null : tagged('list', given.slice(at, at + count))]);
    at += count;
    x = y;
    states.push(...next);
  }
  return tagged('tuple', [x, tagged('list', states)]);
}

function wrappedCell(residual) {
  return (block, args, call) => {
    const [input, given] = cellArgs(block, args);
    const [y, states] = call(block.children.get('base_cell'), [input, given]);
    return tagged('tuple', [residual ? runOp('add', [y, input], {}) : y, states]);
  };
}

export const RECURRENT = {
  RNN: fused,
  LSTM: fused,
  GRU: fused,
  RNNCell: gatedCell,
  LSTMCell: gatedCell,
  GRUCell: gatedCell,
  SequentialRNNCell: sequentialCell,
  DropoutCell: (block, args) => {
    const [input, given] = cellArgs(block, args);
    return tagged('tuple', [input, tagged('list', given ?? [])]);
  },
  ResidualCell: wrappedCell(true),
  ZoneoutCell: wrappedCell(false),
  BidirectionalCell: () => { throw new InputError('a BidirectionalCell can only be unrolled over a sequence, not stepped'); },
};
