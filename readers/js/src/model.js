// Models, spec/FORMAT.md §3: the parameters an architecture creates (§3.1), the layers'
// inference semantics (§3.2) and graphs (§3.3), built from a checked LayerNode tree.
import { FormatError, InputError, SchemaError, ShapeMismatchError } from './errors.js';
import { INFO, NDArray, asArray, cast, isFloat, isScalar, LONE, normaliseAxis, roundTo } from './ndarray.js';
import { activation, floatInput, runOp } from './ops.js';

// -- §3.1: the parameters of a layer, in table order -----------------------------------------

function ownParameters(node) {
  const c = node.config;
  switch (node.type) {
    case 'Dense':
      return [['weight', [c.units, c.in_units]], ...(c.use_bias ? [['bias', [c.units]]] : [])].map((p) => [...p, c.dtype]);
    case 'Embedding': return [['weight', [c.input_dim, c.output_dim], c.dtype]];
    case 'Conv2D':
      return [['weight', [c.channels, c.in_channels / c.groups, ...c.kernel_size]], ...(c.use_bias ? [['bias', [c.channels]]] : [])]
        .map((p) => [...p, c.dtype]);
    case 'BatchNorm': return ['gamma', 'beta', 'running_mean', 'running_var'].map((n) => [n, [c.in_channels], c.dtype]);
    case 'LayerNorm': return ['gamma', 'beta'].map((n) => [n, [c.in_channels], c.dtype]);
    case 'Graph': return c.parameters.map(([name, p]) => [name, p.shape, p.dtype]);
    default: return [];
  }
}

// Every parameter and graph constant of the tree: [{name, shape, dtype, constant}].
export function expectedTensors(root) {
  const out = [], constants = [];
  const walk = (node, path) => {
    const prefix = path ? `${path}.` : '';
    for (const [name, shape, dtype] of ownParameters(node)) out.push({ name: prefix + name, shape, dtype });
    for (const [name, child] of node.children) walk(child, prefix + name);
    if (node.type === 'Graph') for (let k = 0; k < node.config.constants; k++) constants.push({ name: `${path}#const${k}`, constant: true });
  };
  walk(root, '');
  return out.concat(constants);
}

// §3.1: the bundle holds exactly the parameters (shapes and dtypes as the configs imply;
// a 0 in a config-implied shape is an unknown size) and the graph constants.
export function checkTensorsFit(root, weights, where) {
  const byName = new Map(weights.map((t) => [t.name, t]));
  const expected = expectedTensors(root);
  for (const e of expected) {
    const t = byName.get(e.name);
    if (!t) throw new FormatError(`${where}: weights do not fit the architecture: ${e.constant ? 'graph constant' : 'parameter'} ${JSON.stringify(e.name)} is missing`);
    if (e.constant) continue;
    if (t.dtype !== e.dtype) throw new FormatError(`${where}: weights do not fit the architecture: ${e.name} is ${t.dtype}, the layer's is ${e.dtype}`);
    if (t.shape.length !== e.shape.length || e.shape.some((n, k) => n !== 0 && BigInt(n) !== BigInt(t.shape[k]))) {
      throw new FormatError(`${where}: weights do not fit the architecture: ${e.name} has shape (${t.shape.join(', ')}), the config implies (${e.shape.join(', ')})`);
    }
  }
  const names = new Set(expected.map((e) => e.name));
  for (const t of weights) {
    if (!names.has(t.name)) throw new FormatError(`${where}: weights do not fit the architecture: ${JSON.stringify(t.name)} is neither a parameter nor a graph constant`);
  }
}

// §3.3: every block, parameter and constant a graph names exists.
export function checkGraphReferences(root, where) {
  const walk = (node, path) => {
    if (node.type === 'Graph' && node.config.graph) {
      const params = new Set(expectedTensors(node).filter((e) => !e.constant).map((e) => e.name));
      for (const n of node.config.graph.nodes) {
        if (n.op === 'layer' && !resolve(node, n.attrs.block)) throw new SchemaError(`${where}: graph at ${JSON.stringify(path)} calls block ${JSON.stringify(n.attrs.block)}, which is not a descendant`);
        if (n.op === 'parameter' && !params.has(n.attrs.name)) throw new SchemaError(`${where}: graph reads parameter ${JSON.stringify(n.attrs.name)}, which the block does not have`);
        if (n.op === 'constant' && constantIndex(n.attrs.name, node.config.constants) === null) {
          throw new SchemaError(`${where}: graph reads constant ${JSON.stringify(n.attrs.name)}, which does not exist`);
        }
      }
    }
    for (const [name, child] of node.children) walk(child, path ? `${path}.${name}` : name);
  };
  walk(root, '');
}

function resolve(node, dotted) {
  let at = node;
  for (const part of dotted.split('.')) {
    const next = at.children.find(([name]) => name === part);
    if (!next) return null;
    at = next[1];
  }
  return at;
}

function constantIndex(name, count) {
  const m = /^#const([0-9]{1,9})$/.exec(name);
  return m && Number(m[1]) < count ? Number(m[1]) : null;
}

// -- building and running --------------------------------------------------------------------

export function buildModel(root, tensors) {
  const make = (node, path) => {
    const prefix = path ? `${path}.` : '';
    const block = { node, path, params: new Map(), children: new Map(), constants: [] };
    for (const [name] of ownParameters(node)) block.params.set(name, tensors.get(prefix + name));
    for (const [name, child] of node.children) block.children.set(name, make(child, prefix + name));
    if (node.type === 'Graph') for (let k = 0; k < node.config.constants; k++) block.constants.push(tensors.get(`${path}#const${k}`));
    return block;
  };
  const model = make(root, '');
  return (...inputs) => {
    if (root.type !== 'Graph' && inputs.length !== 1) throw new InputError(`a ${root.type} model takes one input, got ${inputs.length}`);
    return call(model, inputs);
  };
}

function call(block, args) {
  if (block.node.type === 'Graph') return runGraph(block, args);
  if (args.length !== 1 || !(args[0] instanceof NDArray)) throw new InputError(`${block.node.type} takes one array`);
  if (block.node.type === 'Sequential') {
    let x = args[0];
    for (const child of block.children.values()) x = call(child, [x]);
    return x;
  }
  return LAYER_FORWARD[block.node.type](block, args[0], block.node.config);
}

function runGraph(block, args) {
  const graph = block.node.config.graph;
  const owner = block.node.config.source_class;
  if (graph === null) throw new InputError(`${owner} was never called while tracing; it has no graph to run`);
  if (args.length !== graph.inputs.length) throw new InputError(`${owner} expects ${graph.inputs.length} inputs, got ${args.length}`);
  const values = new Map(), sizes = {};
  graph.inputs.forEach((spec, k) => {
    const x = args[k];
    if (!(x instanceof NDArray) || x.ndim !== spec.shape.length) throw new InputError(`${owner} input ${spec.name}: expected rank ${spec.shape.length}`);
    spec.shape.forEach((want, j) => {
      const got = x.shape[j];
      if (typeof want === 'string') {
        if (want in sizes && sizes[want] !== got) throw new InputError(`${owner} input ${spec.name}: size ${want} is ${got} here but ${sizes[want]} before`);
        sizes[want] = got;
      } else if (want !== got) throw new InputError(`${owner} input ${spec.name}: axis ${j} is ${got}, expected ${want}`);
    });
    values.set(spec.name, x);
  });
  const params = ownAndDescendantParams(block);
  for (const node of graph.nodes) {
    const inputs = node.inputs.map((name) => values.get(name));
    let results;
    if (node.op === 'layer') {
      const result = call(resolveBlock(block, node.attrs.block), inputs);
      if (node.attrs.returns === 'single') results = [result];
      else if (Array.isArray(result) && result.length === node.outputs.length) results = result;
      else throw new InputError(`${owner}: a layer call returning ${node.attrs.returns} needs a sequence of ${node.outputs.length} values`);
    } else if (node.op === 'parameter') results = [params.get(node.attrs.name)];
    else if (node.op === 'constant') results = [block.constants[constantIndex(node.attrs.name, block.constants.length)]];
    else if (node.op === 'scalar') results = [{ scalar: true, ...node.attrs.value }];
    else results = [runOp(node.op, inputs, node.attrs, sizes)];
    node.outputs.forEach((name, k) => values.set(name, results[k]));
  }
  const outputs = graph.outputs.values.map((name) => {
    const v = values.get(name);
    return isScalar(v) ? asArray(v, LONE[v.kind]) : v;
  });
  if (graph.outputs.kind === 'single') return outputs[0];
  if (graph.outputs.kind === 'dict') return new Map(graph.outputs.keys.map((key, k) => [key, outputs[k]]));
  outputs.kind = graph.outputs.kind;
  return outputs;
}

function resolveBlock(block, dotted) {
  let at = block;
  for (const part of dotted.split('.')) at = at.children.get(part);
  return at;
}

function ownAndDescendantParams(block) {
  const out = new Map();
  const walk = (b, prefix) => {
    for (const [name, value] of b.params) out.set(prefix + name, value);
    for (const [name, child] of b.children) walk(child, `${prefix}${name}.`);
  };
  walk(block, '');
  return out;
}

// -- §3.2 layers -----------------------------------------------------------------------------

function toDtype(x, dtype) {
  const a = asArray(x);
  if (INFO[a.dtype].complex) throw new InputError('complex inputs cannot be computed on by this reader');
  return cast(a, dtype);
}

function applyActivation(name, y) {
  return name === null ? y : activation(name, y);
}

function dense(block, input, c) {
  let x = toDtype(input, c.dtype);
  if (x.ndim < 1 || (c.flatten && x.ndim < 2)) throw new InputError(`Dense expects a batch of inputs, got shape (${x.shape.join(', ')})`);
  const features = c.flatten ? x.size / x.shape[0] : x.shape[x.ndim - 1];
  const lead = c.flatten ? [x.shape[0]] : x.shape.slice(0, -1);
  const weight = block.params.get('weight');
  if (features !== weight.shape[1]) throw new ShapeMismatchError(`Dense: input has ${features} features, the weight ${weight.shape[1]}`);
  const rows = lead.reduce((a, b) => a * b, 1);
  const out = new NDArray(c.dtype, [...lead, c.units]);
  const bias = c.use_bias ? block.params.get('bias').data : null;
  for (let r = 0; r < rows; r++) {
    for (let u = 0; u < c.units; u++) {
      let acc = 0;
      for (let f = 0; f < features; f++) acc += x.data[r * features + f] * weight.data[u * features + f];
      let y = roundTo(c.dtype, acc);
      if (bias) y = roundTo(c.dtype, y + bias[u]);
      out.data[r * c.units + u] = y;
    }
  }
  return applyActivation(c.activation, out);
}

function conv2d(block, input, c) {
  const x = toDtype(input, c.dtype);
  if (x.ndim !== 4) throw new InputError(`Conv2D expects a 4-D NCHW input, got shape (${x.shape.join(', ')})`);
  const [n, C, H, W] = x.shape;
  const G = c.groups, O = c.channels;
  if (C % G) throw new InputError(`Conv2D input has ${C} channels, not divisible by groups=${G}`);
  const weight = block.params.get('weight');
  if (C / G !== weight.shape[1]) throw new ShapeMismatchError(`Conv2D: input has ${C} channels, the weight expects ${weight.shape[1] * G}`);
  const [kh, kw] = c.kernel_size, [sh, sw] = c.strides, [ph, pw] = c.padding, [dh, dw] = c.dilation;
  const OH = Math.floor((H + 2 * ph - dh * (kh - 1) - 1) / sh) + 1;
  const OW = Math.floor((W + 2 * pw - dw * (kw - 1) - 1) / sw) + 1;
  if (OH < 1 || OW < 1) throw new InputError(`Conv2D: input of spatial size (${H}, ${W}) is smaller than the kernel's extent`);
  const out = new NDArray(c.dtype, [n, O, OH, OW]);
  const cg = C / G, og = O / G;
  const bias = c.use_bias ? block.params.get('bias').data : null;
  for (let b = 0; b < n; b++) {
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / og);
      for (let i = 0; i < OH; i++) {
        for (let j = 0; j < OW; j++) {
          let acc = 0;
          for (let ci = 0; ci < cg; ci++) {
            for (let u = 0; u < kh; u++) {
              const y = i * sh + u * dh - ph;
              if (y < 0 || y >= H) continue;
              for (let v = 0; v < kw; v++) {
                const z = j * sw + v * dw - pw;
                if (z < 0 || z >= W) continue;
                acc += weight.data[((o * cg + ci) * kh + u) * kw + v] * x.data[((b * C + g * cg + ci) * H + y) * W + z];
              }
            }
          }
          let r = roundTo(c.dtype, acc);
          if (bias) r = roundTo(c.dtype, r + bias[o]);
          out.data[((b * O + o) * OH + i) * OW + j] = r;
        }
      }
    }
  }
  return applyActivation(c.activation, out);
}

function poolSize(n, k, s, p, ceil, layer) {
  const span = n + 2 * p - k;
  if (span < 0) throw new InputError(`${layer}: input size ${n} with padding ${p} is smaller than pool size ${k}`);
  let out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  if (ceil && (out - 1) * s >= n + p) out -= 1;
  return out;
}

function pool(kind) {
  return (block, input, c) => {
    const x = floatInput(input);
    if (x.ndim !== 4) throw new InputError(`${block.node.type} expects a 4-D NCHW input`);
    const [n, C, H, W] = x.shape;
    const [kh, kw] = c.pool_size, [sh, sw] = c.strides ?? c.pool_size, [ph, pw] = c.padding;
    const OH = poolSize(H, kh, sh, ph, c.ceil_mode, block.node.type), OW = poolSize(W, kw, sw, pw, c.ceil_mode, block.node.type);
    const out = new NDArray(x.dtype, [n, C, OH, OW]);
    for (let b = 0; b < n * C; b++) {
      for (let i = 0; i < OH; i++) {
        for (let j = 0; j < OW; j++) {
          const y0 = i * sh - ph, z0 = j * sw - pw;
          let acc = kind === 'max' ? -Infinity : 0;
          for (let y = Math.max(y0, 0); y < Math.min(y0 + kh, H); y++) {
            for (let z = Math.max(z0, 0); z < Math.min(z0 + kw, W); z++) {
              const v = x.data[(b * H + y) * W + z];
              if (kind === 'max') acc = Number.isNaN(v) || Number.isNaN(acc) ? NaN : Math.max(acc, v);
              else acc += v;
            }
          }
          if (kind === 'avg') {
            const divisor = c.count_include_pad
              ? (Math.min(y0 + kh, H + ph) - y0) * (Math.min(z0 + kw, W + pw) - z0)
              : (Math.min(y0 + kh, H) - Math.max(y0, 0)) * (Math.min(z0 + kw, W) - Math.max(z0, 0));
            acc /= divisor;
          }
          out.data[(b * OH + i) * OW + j] = roundTo(x.dtype, acc);
        }
      }
    }
    return out;
  };
}

function globalPool(kind) {
  return (block, input) => {
    const x = floatInput(input);
    if (x.ndim !== 4) throw new InputError(`${block.node.type} expects a 4-D NCHW input`);
    const [n, C, H, W] = x.shape;
    const out = new NDArray(x.dtype, [n, C, 1, 1]);
    for (let b = 0; b < n * C; b++) {
      let acc = kind === 'max' ? -Infinity : 0;
      for (let i = 0; i < H * W; i++) {
        const v = x.data[b * H * W + i];
        acc = kind === 'max' ? (Number.isNaN(v) || Number.isNaN(acc) ? NaN : Math.max(acc, v)) : acc + v;
      }
      out.data[b] = roundTo(x.dtype, kind === 'max' ? acc : acc / (H * W));
    }
    return out;
  };
}

// Positions along `axis` of x: [outer, n, inner] so element (o, k, i) is at (o*n + k)*inner + i.
function around(x, axis) {
  const outer = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = x.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  return [outer, x.shape[axis], inner];
}

function batchNorm(block, input, c) {
  const x = toDtype(input, c.dtype);
  if (x.ndim < 2 || c.axis < -x.ndim || c.axis >= x.ndim) throw new InputError(`BatchNorm(axis=${c.axis}) cannot apply to shape (${x.shape.join(', ')})`);
  const axis = normaliseAxis(c.axis, x.ndim);
  const [outer, n, inner] = around(x, axis);
  const p = (name) => block.params.get(name).data;
  if (n !== block.params.get('gamma').shape[0]) throw new ShapeMismatchError(`BatchNorm: input has ${n} channels, the parameters ${block.params.get('gamma').shape[0]}`);
  const eps = roundTo(c.dtype, c.epsilon);
  const out = new NDArray(c.dtype, x.shape.slice());
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < n; k++) {
      const gamma = c.scale ? p('gamma')[k] : 1;
      const factor = gamma / Math.sqrt(p('running_var')[k] + eps);
      for (let i = 0; i < inner; i++) {
        const at = (o * n + k) * inner + i;
        out.data[at] = roundTo(c.dtype, (x.data[at] - p('running_mean')[k]) * factor + p('beta')[k]);
      }
    }
  }
  return out;
}

function layerNorm(block, input, c) {
  const x = toDtype(input, c.dtype);
  if (c.axis < -x.ndim || c.axis >= x.ndim) throw new InputError(`LayerNorm(axis=${c.axis}) cannot apply to shape (${x.shape.join(', ')})`);
  const axis = normaliseAxis(c.axis, x.ndim);
  const [outer, n, inner] = around(x, axis);
  if (n !== block.params.get('gamma').shape[0]) throw new ShapeMismatchError(`LayerNorm: input has ${n} features, the parameters ${block.params.get('gamma').shape[0]}`);
  const gamma = block.params.get('gamma').data, beta = block.params.get('beta').data;
  const out = new NDArray(c.dtype, x.shape.slice());
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let mean = 0, variance = 0;
      for (let k = 0; k < n; k++) mean += x.data[(o * n + k) * inner + i];
      mean /= n;
      for (let k = 0; k < n; k++) variance += (x.data[(o * n + k) * inner + i] - mean) ** 2;
      variance /= n;
      const scale = 1 / Math.sqrt(variance + c.epsilon);
      for (let k = 0; k < n; k++) {
        const at = (o * n + k) * inner + i;
        let y = (x.data[at] - mean) * scale;
        if (c.scale) y *= gamma[k];
        if (c.center) y += beta[k];
        out.data[at] = roundTo(c.dtype, y);
      }
    }
  }
  return out;
}

function embedding(block, input, c) {
  const x = asArray(input);
  if (INFO[x.dtype].complex) throw new InputError('complex indices');
  const weight = block.params.get('weight');
  const out = new NDArray(weight.dtype, [...x.shape, c.output_dim]);
  for (let i = 0; i < x.size; i++) {
    const raw = x.data[i];
    const index = Number(raw);
    if (isFloat(x.dtype) && !Number.isInteger(index)) throw new InputError('Embedding indices must be whole numbers');
    if (index < 0 || index >= c.input_dim) throw new InputError(`Embedding index ${index} is out of range [0, ${c.input_dim})`);
    out.data.set(weight.data.subarray(index * c.output_dim, (index + 1) * c.output_dim), i * c.output_dim);
  }
  return out;
}

function flatten(block, input) {
  const x = asArray(input);
  if (x.ndim < 1) throw new InputError('Flatten expects at least a 1-D input');
  return new NDArray(x.dtype, [x.shape[0], x.shape.slice(1).reduce((a, b) => a * b, 1)], x.data);
}

const LAYER_FORWARD = {
  Dense: dense,
  Conv2D: conv2d,
  MaxPool2D: pool('max'),
  AvgPool2D: pool('avg'),
  GlobalAvgPool2D: globalPool('avg'),
  GlobalMaxPool2D: globalPool('max'),
  BatchNorm: batchNorm,
  LayerNorm: layerNorm,
  Embedding: embedding,
  Flatten: flatten,
  Dropout: (block, input) => floatInput(input),
  Activation: (block, input, c) => activation(c.activation, input),
  LeakyReLU: (block, input, c) => activation('leaky_relu', input, c.alpha),
  ELU: (block, input, c) => activation('elu', input, c.alpha),
};
