// The manifest's fields and the architecture, spec/FORMAT.md §2.2, §3, §3.3, §3.4, §6:
// turn the parsed text into checked, normalised objects, or throw the spec's error class.
import { SchemaError, UnknownLayerError, UnknownOpError, VersionError } from './errors.js';
import { DTYPES } from './npy.js';

export const READER_VERSION = [1, 5];
const VERSION = /^(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})$/;
const SIZE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/;
const VALUE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const ACTIVATIONS = ['relu', 'sigmoid', 'tanh', 'softrelu', 'softsign', 'gelu', 'silu'];
const FLOAT_DTYPES = ['float16', 'float32', 'float64'];

// -- typed fields: each checker returns the normalised value or throws SchemaError ----------

const fail = (where, what) => { throw new SchemaError(`${where}: ${what}`); };
const show = (v) => (v instanceof Map ? 'a mapping' : JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? Number(x) : x)));

const int = ({ min = null, gt = null, max = null } = {}) => (v, where) => {
  if (typeof v !== 'bigint') fail(where, `an integer is required, found ${show(v)}`);
  if ((min !== null && v < BigInt(min)) || (gt !== null && v <= BigInt(gt)) || (max !== null && v > BigInt(max))) {
    fail(where, `${v} is out of range`);
  }
  return Number(v);
};
// A non-negative integer kept as a BigInt: exact up to the manifest's 2^63 - 1 (§2.1), where a
// Number would round above 2^53. A tensor's `offset` (§2.2, 1.5) stays one, so that an offset
// no file can hold (above 2^53) is compared exactly with the directory's and refused at load
// as any other wrong offset, never rounded onto a member that happens to start there.
const bigInt = (v, where) => {
  if (typeof v !== 'bigint' || v < 0n) fail(where, `a non-negative integer is required, found ${show(v)}`);
  return v;
};
const float = ({ min = null, max = null, maxExclusive = null } = {}) => (v, where) => {
  if (typeof v !== 'number' && typeof v !== 'bigint') fail(where, `a number is required, found ${show(v)}`);
  const x = Number(v);
  if ((min !== null && !(x >= min)) || (max !== null && !(x <= max)) || (maxExclusive !== null && !(x < maxExclusive))) {
    fail(where, `${x} is out of range`);
  }
  return x;
};
const bool = (v, where) => (typeof v === 'boolean' ? v : fail(where, `a boolean is required, found ${show(v)}`));
const str = (v, where) => (typeof v === 'string' ? v : fail(where, `a string is required, found ${show(v)}`));
const nonEmpty = (v, where) => (str(v, where).length ? v : fail(where, 'an empty string'));
const oneOf = (...allowed) => (v, where) => (allowed.includes(v) ? v : fail(where, `one of ${allowed.join(', ')} is required, found ${show(v)}`));
const nullable = (check) => (v, where) => (v === null ? null : check(v, where));
const list = (check, { min = 0, max = Infinity } = {}) => (v, where) => {
  if (!Array.isArray(v)) fail(where, `a list is required, found ${show(v)}`);
  if (v.length < min || v.length > max) fail(where, `a list of ${v.length} items`);
  return v.map((item, k) => check(item, `${where}[${k}]`));
};
const either = (...checks) => (v, where) => {
  for (const check of checks) {
    try { return check(v, where); } catch (error) { if (!(error instanceof SchemaError)) throw error; }
  }
  return fail(where, `an invalid value ${show(v)}`);
};
const pattern = (re) => (v, where) => (re.test(str(v, where)) ? v : fail(where, `${show(v)} does not match ${re}`));
const mapping = (v, where) => (v instanceof Map ? v : fail(where, `a mapping is required, found ${show(v)}`));
// Per-axis sizes (kernel sizes, strides, padding, ...): one integer per spatial axis, at most 4096.
const MAX_SPATIAL = 4096;
const sizes = (dims, min) => list(int(min === 0 ? { min: 0, max: MAX_SPATIAL } : { gt: 0, max: MAX_SPATIAL }), { min: dims, max: dims });
const filled = (dims, value) => () => Array(dims).fill(value);
const axis64 = (fallback) => [int({ min: -64, max: 63 }), fallback];
const finite = (v, where) => { const x = float()(v, where); return Number.isFinite(x) ? x : fail(where, `a finite number is required, found ${x}`); };
const REQUIRED = Symbol('required');

// Fields of a closed mapping: {name: [check, default or REQUIRED]}; unknown fields refused
// unless `ignoreUnknown` (a newer minor version's additions, §6).
function fields(value, spec, where, { ignoreUnknown = false } = {}) {
  mapping(value, where);
  const out = {};
  for (const key of value.keys()) {
    if (!(key in spec) && !ignoreUnknown) fail(where, `unknown field ${JSON.stringify(key)}`);
  }
  for (const [key, [check, fallback]] of Object.entries(spec)) {
    if (value.has(key)) out[key] = check(value.get(key), `${where}.${key}`);
    else if (fallback === REQUIRED) fail(where, `the field ${JSON.stringify(key)} is missing`);
    else out[key] = typeof fallback === 'function' ? fallback() : fallback;
  }
  return out;
}

// -- layer configs (§3.2, the JSON Schema's $defs/<Type>Config) --------------------------------

const act = [nullable(oneOf(...ACTIVATIONS)), null];
const fdtype = [oneOf(...FLOAT_DTYPES), 'float32'];
const pool = (dims, average) => ({
  config: {
    pool_size: [sizes(dims, 1), filled(dims, 2)], strides: [nullable(sizes(dims, 1)), null], padding: [sizes(dims, 0), filled(dims, 0)],
    ceil_mode: [bool, false], ...(average ? { count_include_pad: [bool, true] } : {}),
  },
  check: poolPadding,
});
const convolution = (dims, transpose) => ({
  config: {
    channels: [int({ gt: 0 }), REQUIRED], kernel_size: [sizes(dims, 1), REQUIRED], strides: [sizes(dims, 1), filled(dims, 1)],
    padding: [sizes(dims, 0), filled(dims, 0)], dilation: [sizes(dims, 1), filled(dims, 1)], groups: [int({ gt: 0 }), 1], activation: act,
    use_bias: [bool, true], in_channels: [int({ min: 0 }), 0], dtype: fdtype,
    ...(transpose ? { output_padding: [sizes(dims, 0), filled(dims, 0)] } : {}),
  },
  check: (c, where) => {
    if (c.channels % c.groups || c.in_channels % c.groups) fail(where, 'channels and in_channels must be divisible by groups');
    if (transpose && c.output_padding.some((p, k) => p >= c.strides[k])) fail(where, 'output_padding must be smaller than strides');
  },
});
// §3.2 recurrent layers and cells (the JSON Schema's RNNConfig, LSTMCellConfig, ...).
const rate = [float({ min: 0, maxExclusive: 1 }), 0.0];
const fused = (extra) => ({
  config: {
    hidden_size: [int({ gt: 0 }), REQUIRED], num_layers: [int({ min: 1, max: 1024 }), 1], layout: [oneOf('TNC', 'NTC'), 'TNC'],
    dropout: rate, bidirectional: [bool, false], input_size: [int({ min: 0 }), 0], dtype: fdtype, use_sequence_length: [bool, false], ...extra,
  },
});
const cell = (extra) => ({ config: { hidden_size: [int({ gt: 0 }), REQUIRED], input_size: [int({ min: 0 }), 0], dtype: fdtype, ...extra } });
const cellAct = (fallback) => [oneOf(...ACTIVATIONS), fallback];
const RECURRENT_LAYERS = {
  RNN: fused({ activation: [oneOf('relu', 'tanh'), 'relu'] }),
  LSTM: fused({
    projection_size: [nullable(int({ gt: 0 })), null], state_clip_min: [nullable(float()), null], state_clip_max: [nullable(float()), null],
    state_clip_nan: [bool, false],
  }),
  GRU: fused({}),
  RNNCell: cell({ activation: cellAct('tanh') }),
  LSTMCell: cell({ activation: cellAct('tanh'), recurrent_activation: cellAct('sigmoid') }),
  GRUCell: cell({}),
  SequentialRNNCell: { container: true, config: {} },
  BidirectionalCell: { container: true, config: {}, children: ['l_cell', 'r_cell'] },
  DropoutCell: { config: { rate: [float({ min: 0, maxExclusive: 1 }), REQUIRED], axes: [list(int()), () => []] } },
  ResidualCell: { container: true, config: {}, children: ['base_cell'] },
  ZoneoutCell: { container: true, config: { zoneout_outputs: rate, zoneout_states: rate }, children: ['base_cell'] },
};

// §3.2 Lambda: an op whose attributes all have defaults; the defaults are what it runs with.
const lambda = {
  config: { function: [str, REQUIRED] },
  check: (c, where) => {
    const spec = OP_ATTRS[c.function];
    if (!Object.hasOwn(OP_ATTRS, c.function) || Object.values(spec).some(([, fallback]) => fallback === REQUIRED)) {
      fail(where, `${JSON.stringify(c.function)} is not an op a Lambda can name`);
    }
    c.attrs = fields(new Map(), spec, where);
  },
};
export const LAYERS = {
  Sequential: { container: true, config: {} },
  Graph: { container: true, config: null }, // checked by graphConfig
  Dense: { config: { units: [int({ gt: 0 }), REQUIRED], activation: act, use_bias: [bool, true], flatten: [bool, true], dtype: fdtype, in_units: [int({ min: 0 }), 0] } },
  Activation: { config: { activation: [oneOf(...ACTIVATIONS), REQUIRED] } },
  LeakyReLU: { config: { alpha: [float(), REQUIRED] } },
  ELU: { config: { alpha: [float(), 1.0] } },
  Dropout: { config: { rate: [float({ min: 0, maxExclusive: 1 }), REQUIRED], axes: [list(int()), () => []] } },
  Flatten: { config: {} },
  Embedding: { config: { input_dim: [int({ gt: 0 }), REQUIRED], output_dim: [int({ gt: 0 }), REQUIRED], dtype: fdtype } },
  Conv1D: convolution(1, false),
  Conv2D: convolution(2, false),
  Conv3D: convolution(3, false),
  Conv1DTranspose: convolution(1, true),
  Conv2DTranspose: convolution(2, true),
  Conv3DTranspose: convolution(3, true),
  MaxPool1D: pool(1, false),
  MaxPool2D: pool(2, false),
  MaxPool3D: pool(3, false),
  AvgPool1D: pool(1, true),
  AvgPool2D: pool(2, true),
  AvgPool3D: pool(3, true),
  GlobalAvgPool1D: { config: {} },
  GlobalAvgPool2D: { config: {} },
  GlobalAvgPool3D: { config: {} },
  GlobalMaxPool1D: { config: {} },
  GlobalMaxPool2D: { config: {} },
  GlobalMaxPool3D: { config: {} },
  ReflectionPad2D: {
    config: { padding: [list(int({ min: 0, max: MAX_SPATIAL }), { min: 8, max: 8 }), filled(8, 0)] },
    check: (c, where) => { if (c.padding.slice(0, 4).some((p) => p !== 0)) fail(where, 'padding may only pad the last two axes'); },
  },
  Identity: { config: {} },
  Lambda: lambda,
  HybridLambda: lambda,
  Concatenate: { container: true, config: { axis: axis64(-1) } },
  PReLU: { config: { in_channels: [int({ gt: 0 }), 1], dtype: fdtype } },
  SELU: { config: {} },
  Swish: { config: { beta: [finite, 1.0] } },
  GELU: { config: { approximation: [oneOf('erf', 'tanh'), 'erf'] } },
  BatchNorm: {
    config: {
      axis: [int(), 1], momentum: [float(), 0.9], epsilon: [float({ min: 0 }), 1e-5], center: [bool, true], scale: [bool, true],
      use_global_stats: [bool, false], in_channels: [int({ min: 0 }), 0], dtype: fdtype,
    },
  },
  LayerNorm: { config: { axis: [int(), -1], epsilon: [float({ min: 0 }), 1e-5], center: [bool, true], scale: [bool, true], in_channels: [int({ min: 0 }), 0], dtype: fdtype } },
  InstanceNorm: {
    config: { axis: axis64(1), epsilon: [float({ min: 0 }), 1e-5], center: [bool, true], scale: [bool, false], in_channels: [int({ min: 0 }), 0], dtype: fdtype },
  },
  ...RECURRENT_LAYERS,
  GroupNorm: { config: { num_groups: [int({ gt: 0 }), 1], epsilon: [float({ min: 0 }), 1e-5], center: [bool, true], scale: [bool, true], dtype: fdtype } },
};

function poolPadding(c, where) {
  if (c.padding.some((p, k) => 2 * p > c.pool_size[k])) fail(where, 'padding must be at most half of pool_size');
}

// -- graph ops (§3.4): attrs of every op -------------------------------------------------------

const axisList = either(int(), list(int()));
const NO_ATTRS = {};

// §3.3 size expressions `[C*]A[*B][/D][±E]`: kept parsed, evaluated when the graph runs.
const SIZE_EXPR = /^(?:([0-9]{1,9})\*)?([A-Za-z_][A-Za-z0-9_]{0,31})(?:\*([A-Za-z_][A-Za-z0-9_]{0,31}))?(?:\/([0-9]{1,9}))?(?:([+-])([0-9]{1,9}))?$/;
const sizeExpr = (v, where) => {
  const m = SIZE_EXPR.exec(str(v, where));
  if (!m || (m[1] !== undefined && Number(m[1]) === 0) || (m[4] !== undefined && Number(m[4]) === 0)) fail(where, `${show(v)} is not a size expression`);
  return {
    sizeExpr: v, c: Number(m[1] ?? 1), names: [m[2], ...(m[3] ? [m[3]] : [])], d: Number(m[4] ?? 1),
    e: m[5] === undefined ? 0 : (m[5] === '-' ? -1 : 1) * Number(m[6]),
  };
};
const size = either(int(), sizeExpr);
const sizeNames = (value, out = []) => {
  if (Array.isArray(value)) value.forEach((v) => sizeNames(v, out));
  else if (value && typeof value === 'object' && value.sizeExpr) out.push(...value.names);
  else if (value && typeof value === 'object' && !(value instanceof Map)) Object.values(value).forEach((v) => sizeNames(v, out));
  return out;
};
const INDEX_ITEM = (v, where) => {
  mapping(v, where);
  if (v.size !== 1) fail(where, 'an index item has exactly one field');
  const [[key, value]] = [...v.entries()];
  if (key === 'int') return { int: size(value, `${where}.int`) };
  if (key === 'slice') return { slice: list(nullable(size), { min: 3, max: 3 })(value, `${where}.slice`) };
  if (key === 'array') return { array: int({ min: 0 })(value, `${where}.array`) };
  if ((key === 'newaxis' || key === 'ellipsis') && value === true) return { [key]: true };
  return fail(where, `an invalid index item ${JSON.stringify(key)}`);
};
const literal = (v, where) => (typeof v === 'boolean' ? { kind: 'bool', value: v } : typeof v === 'bigint' ? { kind: 'int', value: v }
  : typeof v === 'number' ? { kind: 'float', value: v } : fail(where, 'a boolean, integer or float is required'));
const dtypeName = oneOf(...Object.keys(DTYPES));
const reduce = { axis: [nullable(axisList), null], keepdims: [bool, false] };
const sequence = (max) => ({ use_sequence_length: [bool, false], axis: [int({ min: 0, max }), 0] });
const softmax = { axis: [int(), -1], temperature: [nullable(float()), null], use_length: [bool, false], dtype: [nullable(oneOf(...FLOAT_DTYPES)), null] };
export const OP_ATTRS = {};
for (const op of ['add', 'subtract', 'multiply', 'divide', 'power', 'maximum', 'minimum', 'matmul', 'greater', 'greater_equal',
  'less', 'less_equal', 'equal', 'not_equal', 'negative', 'abs', 'square', 'exp', 'log', 'sqrt', 'sin', 'cos', 'where', 'flatten',
  'floor_divide', 'mod', 'logical_and', 'logical_or', 'logical_not', 'expm1', 'log1p', 'reciprocal', 'sign', 'floor', 'ceil', 'dot',
  'fmod', 'logical_xor', 'tan', 'arcsin', 'arccos', 'arctan', 'sinh', 'cosh', 'arcsinh', 'arccosh', 'arctanh', 'erf', 'rint',
  ...ACTIVATIONS]) OP_ATTRS[op] = NO_ATTRS;
Object.assign(OP_ATTRS, {
  leaky_relu: { alpha: [float(), 0.01] },
  elu: { alpha: [float(), 1.0] },
  softmax,
  log_softmax: softmax,
  concatenate: { axis: [int(), 0] },
  stack: { axis: [int(), 0] },
  reshape: { shape: [list(size), REQUIRED] },
  transpose: { axes: [nullable(list(int())), null] },
  squeeze: { axis: [nullable(axisList), null] },
  expand_dims: { axis: [axisList, REQUIRED] },
  cast: { dtype: [dtypeName, REQUIRED] },
  getitem: { index: [list(INDEX_ITEM, { max: 64 }), REQUIRED] },
  prod: reduce,
  var: { ...reduce, ddof: [int({ min: 0 }), 0] },
  std: { ...reduce, ddof: [int({ min: 0 }), 0] },
  argmax: { axis: [nullable(int()), null], keepdims: [bool, false] },
  argmin: { axis: [nullable(int()), null], keepdims: [bool, false] },
  cumsum: { axis: [nullable(int()), null] },
  clip: { a_min: [nullable(float()), null], a_max: [nullable(float()), null] },
  batch_dot: { transpose_a: [bool, false], transpose_b: [bool, false] },
  fully_connected: { num_hidden: [int({ min: 0 }), 0], no_bias: [bool, false], flatten: [bool, true] },
  split: { sections: [nullable(int({ min: 1, max: 100000 })), null], indices: [nullable(list(size)), null], axis: [int(), 0] },
  swapaxes: { axis1: [int(), REQUIRED], axis2: [int(), REQUIRED] },
  repeat: { repeats: [size, REQUIRED], axis: [nullable(int()), null] },
  tile: { reps: [list(size), REQUIRED] },
  broadcast_to: { shape: [list(size), REQUIRED] },
  full: { shape: [list(size), REQUIRED], value: [literal, REQUIRED], dtype: [dtypeName, REQUIRED] },
  arange: { start: [float(), 0], stop: [either(size, float()), REQUIRED], step: [float(), 1], dtype: [dtypeName, REQUIRED] },
  zeros_like: { dtype: [nullable(dtypeName), null] },
  ones_like: { dtype: [nullable(dtypeName), null] },
  full_like: { value: [literal, REQUIRED], dtype: [nullable(dtypeName), null] },
  take: { axis: [nullable(int()), null], mode: [oneOf('raise', 'wrap', 'clip'), 'raise'] },
  pick: { axis: [nullable(int()), -1], mode: [oneOf('clip', 'wrap'), 'clip'], keepdims: [bool, false] },
  one_hot: {
    depth: [int({ min: 0, max: 2 ** 24 }), REQUIRED], on_value: [float(), 1.0], off_value: [float(), 0.0],
    dtype: [oneOf(...FLOAT_DTYPES, 'int32', 'int64', 'uint8', 'int8', 'bool'), 'float32'],
  },
  topk: {
    axis: [nullable(int()), -1], k: [int({ min: 1 }), 1], ret_typ: [oneOf('value', 'indices', 'mask', 'both'), 'indices'],
    is_ascend: [bool, false], dtype: [dtypeName, 'float32'],
  },
  sequence_mask: { ...sequence(1), value: [float(), 0.0] },
  sequence_last: sequence(1),
  sequence_reverse: sequence(0),
  layer_norm: { axis: [int(), -1], eps: [float({ min: 0 }), 1e-5] },
  dropout: { p: [float({ min: 0, maxExclusive: 1 }), 0.5], axes: [list(int()), () => []] },
  embedding: { input_dim: [int({ min: 0 }), 0], output_dim: [int({ min: 0 }), 0] },
  smooth_l1: { scalar: [(v, w) => { const x = float()(v, w); return x > 0 ? x : fail(w, 'must be positive'); }, 1.0] },
  lrn: { size: [int({ min: 1, max: 4096 }), REQUIRED], alpha: [float(), 1e-4], beta: [float(), 0.75], bias: [float(), 1.0] },
});
for (const op of ['sum', 'mean', 'max', 'min']) OP_ATTRS[op] = reduce;

// How many outputs an op node has (§3.3: one, except `split` and `topk` with `ret_typ: both`).
function outputCount(op, attrs, where) {
  if (op === 'split') {
    if ((attrs.sections === null) === (attrs.indices === null)) fail(where, 'split takes exactly one of sections and indices');
    return attrs.sections ?? attrs.indices.length + 1;
  }
  return op === 'topk' && attrs.ret_typ === 'both' ? 2 : 1;
}

// §3.3 trees: 'value', 'none' or {kind, items}; normalised with their value count.
function tree(v, where) {
  if (v === 'value' || v === 'none') return v;
  const t = fields(v, { kind: [oneOf('tuple', 'list'), REQUIRED], items: [list(tree, { max: 100000 }), REQUIRED] }, where);
  return t;
}
const treeCount = (t) => (t === 'value' ? 1 : t === 'none' ? 0 : t.items.reduce((n, i) => n + treeCount(i), 0));
const countOf = (trees) => trees.reduce((n, t) => n + treeCount(t), 0);

const SPECIAL = {
  layer: {
    block: [nonEmpty, REQUIRED], returns: [oneOf('single', 'tuple', 'list', 'tree'), 'single'],
    args: [nullable(list(tree)), null], tree: [nullable(tree), null],
  },
  parameter: { name: [nonEmpty, REQUIRED] },
  constant: { name: [nonEmpty, REQUIRED] },
  scalar: { value: [literal, REQUIRED] },
};

function graphSpec(value, where) {
  const g = fields(value, {
    inputs: [list((v, w) => fields(v, { name: [str, REQUIRED], dtype: [str, REQUIRED],
      shape: [list(either((x, w2) => Number(bigInt(x, w2) < 2n ** 63n ? x : fail(w2, 'too large')), pattern(SIZE_NAME))), REQUIRED] }, w)), REQUIRED],
    nodes: [list((v, w) => fields(v, { op: [str, REQUIRED], inputs: [list(str), () => []], outputs: [list(str), REQUIRED],
      attrs: [mapping, () => new Map()] }, w)), REQUIRED],
    outputs: [(v, w) => fields(v, { kind: [oneOf('single', 'tuple', 'list', 'dict', 'tree'), REQUIRED], values: [list(str), REQUIRED],
      keys: [nullable(list(str)), null], tree: [nullable(tree), null] }, w), REQUIRED],
    args: [nullable(list(tree)), null],
  }, where);
  const bound = new Set(g.inputs.flatMap((input) => input.shape.filter((d) => typeof d === 'string')));
  const defined = new Set();
  const define = (name) => {
    if (!VALUE_NAME.test(name) || defined.has(name)) fail(where, `value name ${JSON.stringify(name)} is invalid or defined twice`);
    defined.add(name);
  };
  g.inputs.forEach((input) => define(input.name));
  if (g.args !== null && countOf(g.args) !== g.inputs.length) fail(where, `args hold ${countOf(g.args)} values for ${g.inputs.length} inputs`);
  g.nodes.forEach((node, k) => {
    const at = `${where}.nodes[${k}]`;
    for (const name of node.inputs) if (!defined.has(name)) fail(at, `reads ${JSON.stringify(name)} before it is defined`);
    if (node.op in SPECIAL) {
      node.attrs = fields(node.attrs, SPECIAL[node.op], `${at}.attrs`);
      if (node.op !== 'layer' && (node.inputs.length || node.outputs.length !== 1)) fail(at, `${node.op} takes no inputs and has one output`);
      if (node.op === 'layer') {
        const { returns, args, tree: shape } = node.attrs;
        if (returns === 'single' && node.outputs.length !== 1) fail(at, 'a single-valued layer call has one output');
        if ((returns === 'tree') !== (shape !== null)) fail(at, "a layer call has 'tree' exactly when it returns 'tree'");
        if (shape !== null && treeCount(shape) !== node.outputs.length) fail(at, `the result tree holds ${treeCount(shape)} values for ${node.outputs.length} outputs`);
        if (args !== null && countOf(args) !== node.inputs.length) fail(at, `args hold ${countOf(args)} values for ${node.inputs.length} inputs`);
      }
    } else {
      if (!(node.op in OP_ATTRS)) throw new UnknownOpError(`${at}: unknown op ${JSON.stringify(node.op)}; known ops: ${Object.keys(OP_ATTRS).sort().join(', ')}`);
      node.attrs = fields(node.attrs, OP_ATTRS[node.op], `${at}.attrs`);
      const count = outputCount(node.op, node.attrs, at);
      if (node.outputs.length !== count) fail(at, `${node.op} has exactly ${count} output${count === 1 ? '' : 's'} here`);
      for (const name of sizeNames(node.attrs)) if (!bound.has(name)) fail(at, `the size name ${JSON.stringify(name)} is not bound by the graph's inputs`);
    }
    node.outputs.forEach(define);
  });
  const out = g.outputs;
  for (const name of out.values) if (!defined.has(name)) fail(where, `graph output ${JSON.stringify(name)} is never defined`);
  if ((out.kind === 'dict') !== (out.keys !== null)) fail(where, "graph outputs have 'keys' exactly when their kind is 'dict'");
  if ((out.kind === 'tree') !== (out.tree !== null)) fail(where, "graph outputs have 'tree' exactly when their kind is 'tree'");
  if (out.tree !== null && treeCount(out.tree) !== out.values.length) fail(where, `the output tree holds ${treeCount(out.tree)} values for ${out.values.length}`);
  if (out.keys !== null && (out.keys.length !== out.values.length || new Set(out.keys).size !== out.keys.length)) {
    fail(where, 'graph outputs need one distinct key per value');
  }
  if (out.kind === 'single' && out.values.length !== 1) fail(where, "a 'single' graph output has exactly one value");
  return g;
}

function graphConfig(value, where) {
  return fields(value, {
    source_class: [str, 'Graph'],
    parameters: [(v, w) => [...mapping(v, w).entries()].map(([name, p]) => [name, fields(p, {
      shape: [list((x, w2) => Number(bigInt(x, w2))), REQUIRED], dtype: [oneOf(...FLOAT_DTYPES), REQUIRED], trainable: [bool, true],
    }, `${w}.${name}`)]), () => []],
    constants: [int({ min: 0, max: 100000 }), 0],
    graph: [nullable(graphSpec), null],
  }, where);
}

// -- the layer tree ----------------------------------------------------------------------------

export function layerNode(value, where, depth = 1) {
  if (depth > 64) fail(where, 'the architecture nests deeper than 64 levels');
  const node = fields(value, { type: [str, REQUIRED], config: [mapping, () => new Map()], children: [mapping, () => new Map()] }, where);
  const entry = LAYERS[node.type];
  if (!entry) throw new UnknownLayerError(`${where}: unknown layer type ${JSON.stringify(node.type)}; known types: ${Object.keys(LAYERS).sort().join(', ')}`);
  const config = node.type === 'Graph' ? graphConfig(node.config, `${where}.config`) : fields(node.config, entry.config, `${where}.config`);
  if (entry.check) entry.check(config, `${where}.config`);
  const names = [...node.children.keys()];
  if (names.length && !entry.container) fail(where, `layer type ${node.type} cannot have children`);
  for (const name of names) {
    if (!name || name.includes('.')) fail(where, `child name ${JSON.stringify(name)} is empty or holds '.'`);
  }
  if (entry.children && names.join() !== entry.children.join()) fail(where, `a ${node.type} has exactly the children ${entry.children.join(', ')}`);
  const children = names.map((name) => [name, layerNode(node.children.get(name), `${where}.children.${name}`, depth + 1)]);
  return { type: node.type, config, children };
}

// -- the manifest ------------------------------------------------------------------------------

export function checkVersion(doc, where) {
  if (doc.get('format') !== 'modelpack') fail(where, `not a modelpack manifest (format ${show(doc.get('format'))})`);
  const text = doc.get('format_version');
  const match = typeof text === 'string' ? VERSION.exec(text) : null;
  if (!match) fail(where, `format_version must look like MAJOR.MINOR, found ${show(text)}`);
  const version = [Number(match[1]), Number(match[2])];
  if (version[0] !== READER_VERSION[0]) {
    throw new VersionError(`${where}: written in format version ${text}, but this reader understands major version ${READER_VERSION[0]} (up to ${READER_VERSION.join('.')})`);
  }
  return version;
}

function codePoints(s) { return [...s].length; }

export function checkTensorName(name, where) {
  const n = codePoints(name);
  if (n < 1 || n > 1024 || /[/\\\x00-\x1f\x7f]/.test(name)) fail(where, `tensor name ${JSON.stringify(name)} is not allowed`);
}

// §11: a checkpoint's training state (CheckpointInfo), checked field by field.
const HEX128 = /^0x[0-9a-f]{1,32}$/;
const stringMap = (check) => (v, where) => new Map([...mapping(v, where).entries()].map(([k, x]) => [k, check(x, `${where}.${k}`)]));
const generatorState = (v, where) => fields(v, {
  bit_generator: [oneOf('PCG64', 'PCG64DXSM'), REQUIRED], state: [pattern(HEX128), REQUIRED], inc: [pattern(HEX128), REQUIRED],
  has_uint32: [int({ min: 0, max: 1 }), REQUIRED], uinteger: [int({ min: 0, max: 2 ** 32 - 1 }), REQUIRED],
}, where);
const checkpointInfo = (v, where) => fields(v, {
  step: [int({ min: 0 }), REQUIRED],
  trainer: [nullable((t, w) => fields(t, {
    optimizer: [pattern(/^[a-z][a-z0-9_]{0,31}$/), REQUIRED],
    options: [stringMap(nullable(float())), REQUIRED],
    update_counts: [stringMap(int({ min: 0 })), REQUIRED],
  }, w)), null],
  random: [(r, w) => fields(r, { seed: [nullable(int({ min: 0 })), null], streams: [stringMap(generatorState), () => new Map()] }, w),
    () => ({ seed: null, streams: new Map() })],
  rng: [stringMap(generatorState), () => new Map()],
  data: [list((d, w) => fields(d, { position: [int({ min: 0 }), REQUIRED] }, w)), () => []],
  state: [mapping, () => new Map()],
}, where);
export const CHECKPOINT_PREFIXES = ['trainer:', 'state:', 'data:'];

// §3.1 (from 1.3): each tie goes from a name with no tensor to a stored tensor, in one step.
function checkTies(ties, weights, where) {
  const stored = new Set(weights.map((t) => t.name));
  for (const alias of ties.keys()) {
    checkTensorName(alias, `${where}.ties`);
    if (stored.has(alias)) fail(where, `tie ${JSON.stringify(alias)}: a tied name has no tensor of its own, but 'weights' lists one`);
  }
  for (const [alias, target] of ties) {
    if (!stored.has(target)) fail(where, `tie ${JSON.stringify(alias)} → ${JSON.stringify(target)}: the target must be a tensor in 'weights'`);
  }
}

export function validateManifest(doc, where, version) {
  const newerMinor = version[1] > READER_VERSION[1];
  if (doc.get('kind') === 'sharded') {
    // §12 (1.4): an index names shard files beside it; this reader is given one archive's bytes.
    fail(where, "a sharded index (kind 'sharded', §12) names other files, which this reader does not open: read each shard, a tensor archive, on its own");
  }
  const m = fields(doc, {
    format: [oneOf('modelpack'), REQUIRED],
    format_version: [str, REQUIRED],
    producer: [str, REQUIRED],
    kind: [oneOf('model', 'tensors', 'checkpoint'), REQUIRED],
    architecture: [nullable((v, w) => layerNode(v, w)), null],
    layout: [nullable(oneOf('single', 'list', 'tuple', 'dict')), null],
    checkpoint: [nullable(checkpointInfo), null],
    weights: [mapping, REQUIRED],
    ties: [nullable(stringMap(str)), null],
    metadata: [(v, w) => new Map([...mapping(v, w).entries()].map(([k, x]) => [k, str(x, `${w}.${k}`)])), () => new Map()],
  }, where, { ignoreUnknown: newerMinor });
  m.weights = [...m.weights.entries()].map(([name, info]) => {
    checkTensorName(name, `${where}.weights`);
    const t = fields(info, {
      dtype: [oneOf(...Object.keys(DTYPES)), REQUIRED],
      shape: [list((x, w) => (bigInt(x, w) < 2n ** 63n ? x : fail(w, 'too large'))), REQUIRED],
      sha256: [nullable(pattern(/^[0-9a-f]{64}$/)), null],
      offset: [nullable(bigInt), null],
    }, `${where}.weights.${name}`, { ignoreUnknown: newerMinor });
    if (t.sha256 === null && (version[0] > 1 || version[1] >= 1)) fail(where, `tensor ${JSON.stringify(name)} has no sha256, which format ${version.join('.')} manifests record`);
    return { name, ...t };
  });
  if (m.kind === 'model' && (m.architecture === null || m.layout !== null)) fail(where, "a 'model' manifest needs 'architecture' and no 'layout'");
  if (m.kind === 'tensors' && (m.layout === null || m.architecture !== null)) fail(where, "a 'tensors' manifest needs 'layout' and no 'architecture'");
  if ((m.kind === 'checkpoint') !== (m.checkpoint !== null)) fail(where, "a manifest has 'checkpoint' exactly when its kind is 'checkpoint'");
  if (m.kind === 'checkpoint' && m.layout !== null) fail(where, "a 'checkpoint' manifest has no 'layout'");
  if (m.kind === 'checkpoint') {
    for (const t of m.weights) {
      if (t.name.includes(':') && !CHECKPOINT_PREFIXES.some((p) => t.name.startsWith(p))) {
        fail(where, `checkpoint tensor ${JSON.stringify(t.name)}: a name with ':' starts with one of ${CHECKPOINT_PREFIXES.join(', ')}`);
      }
    }
  }
  if (m.ties !== null) {
    if (m.architecture === null) fail(where, "'ties' belongs to a manifest with an 'architecture'");
    checkTies(m.ties, m.weights, where);
  }
  if (['single', 'list', 'tuple'].includes(m.layout)) {
    const names = m.weights.map((t) => t.name);
    if (names.some((n, k) => n !== String(k)) || (m.layout === 'single' && names.length !== 1)) {
      fail(where, `a '${m.layout}' layout names its tensors '0', '1', ... in order`);
    }
  }
  return m;
}
