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
    case 'Conv1D': case 'Conv2D': case 'Conv3D':
      return [['weight', [c.channels, c.in_channels / c.groups, ...c.kernel_size]], ...(c.use_bias ? [['bias', [c.channels]]] : [])]
        .map((p) => [...p, c.dtype]);
    case 'Conv1DTranspose': case 'Conv2DTranspose': case 'Conv3DTranspose':
      return [['weight', [c.in_channels, c.channels / c.groups, ...c.kernel_size]], ...(c.use_bias ? [['bias', [c.channels]]] : [])]
        .map((p) => [...p, c.dtype]);
    case 'InstanceNorm': return ['gamma', 'beta'].map((n) => [n, [c.in_channels], c.dtype]);
    case 'GroupNorm': return ['gamma', 'beta'].map((n) => [n, [c.num_groups], c.dtype]);
    case 'PReLU': return [['alpha', [c.in_channels], c.dtype]];
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
  if (block.node.type === 'Concatenate') {
    const outputs = [...block.children.values()].map((child) => call(child, args));
    if (!outputs.length) throw new InputError('Concatenate has no children to join');
    return runOp('concatenate', outputs, { axis: block.node.config.axis });
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

const product = (shape) => shape.reduce((a, b) => a * b, 1);

// Multi-index of a flat C-order position, and back.
function unravel(flat, shape) {
  const index = new Array(shape.length);
  for (let k = shape.length - 1; k >= 0; k--) { index[k] = flat % shape[k]; flat = Math.floor(flat / shape[k]); }
  return index;
}
function ravel(index, shape) {
  let flat = 0;
  for (let k = 0; k < shape.length; k++) flat = flat * shape[k] + index[k];
  return flat;
}

function spatialInput(x, dims, type) {
  const layouts = { 1: 'NCW', 2: 'NCHW', 3: 'NCDHW' };
  if (x.ndim !== dims + 2) throw new InputError(`${type} expects a ${dims + 2}-D ${layouts[dims]} input, got shape (${x.shape.join(', ')})`);
}

// §3.2 Conv1D/2D/3D and the transposed convolutions: sums in float64, rounded once, then bias.
function convolution(dims, transpose) {
  return (block, input, c) => {
    const type = block.node.type;
    const x = toDtype(input, c.dtype);
    spatialInput(x, dims, type);
    const [n, C] = x.shape, S = x.shape.slice(2);
    const G = c.groups, O = c.channels, cg = C / G, og = O / G;
    if (C % G) throw new InputError(`${type} input has ${C} channels, not divisible by groups=${G}`);
    const weight = block.params.get('weight');
    const expected = transpose ? weight.shape[0] : weight.shape[1] * G;
    if (C !== expected) throw new ShapeMismatchError(`${type}: input has ${C} channels, the weight expects ${expected}`);
    const k = c.kernel_size, s = c.strides, p = c.padding, d = c.dilation;
    const OS = S.map((size, a) => (transpose
      ? (size - 1) * s[a] - 2 * p[a] + d[a] * (k[a] - 1) + 1 + c.output_padding[a]
      : Math.floor((size + 2 * p[a] - d[a] * (k[a] - 1) - 1) / s[a]) + 1));
    if (OS.some((size) => size < 1)) throw new InputError(`${type}: input of spatial size (${S.join(', ')}) gives an empty output`);
    const K = product(k), Q = product(S), P = product(OS);
    const acc = new Float64Array(n * O * P);
    const at = new Array(dims);
    const inside = (from, kernel, bound) => {
      for (let a = 0; a < dims; a++) {
        at[a] = from[a] * s[a] + kernel[a] * d[a] - p[a];
        if (at[a] < 0 || at[a] >= bound[a]) return false;
      }
      return true;
    };
    for (let b = 0; b < n; b++) {
      if (!transpose) {
        for (let o = 0; o < O; o++) {
          const g = Math.floor(o / og);
          for (let q = 0; q < P; q++) {
            const oi = unravel(q, OS);
            let sum = 0;
            for (let ci = 0; ci < cg; ci++) {
              for (let kk = 0; kk < K; kk++) {
                if (!inside(oi, unravel(kk, k), S)) continue;
                sum += weight.data[(o * cg + ci) * K + kk] * x.data[(b * C + g * cg + ci) * Q + ravel(at, S)];
              }
            }
            acc[(b * O + o) * P + q] = sum;
          }
        }
      } else {
        for (let ci = 0; ci < C; ci++) {
          const g = Math.floor(ci / cg);
          for (let q = 0; q < Q; q++) {
            const ii = unravel(q, S), value = x.data[(b * C + ci) * Q + q];
            for (let kk = 0; kk < K; kk++) {
              if (!inside(ii, unravel(kk, k), OS)) continue;
              const target = ravel(at, OS);
              for (let oo = 0; oo < og; oo++) acc[(b * O + g * og + oo) * P + target] += value * weight.data[(ci * og + oo) * K + kk];
            }
          }
        }
      }
    }
    const out = new NDArray(c.dtype, [n, O, ...OS]);
    const bias = c.use_bias ? block.params.get('bias').data : null;
    for (let i = 0; i < acc.length; i++) {
      let r = roundTo(c.dtype, acc[i]);
      if (bias) r = roundTo(c.dtype, r + bias[Math.floor(i / P) % O]);
      out.data[i] = r;
    }
    return applyActivation(c.activation, out);
  };
}

function poolSize(n, k, s, p, ceil, layer) {
  const span = n + 2 * p - k;
  if (span < 0) throw new InputError(`${layer}: input size ${n} with padding ${p} is smaller than pool size ${k}`);
  let out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  if (ceil && (out - 1) * s >= n + p) out -= 1;
  return out;
}

// §3.2 pooling, every spatial axis alike.
function pool(kind, dims) {
  return (block, input, c) => {
    const type = block.node.type;
    const x = floatInput(input);
    spatialInput(x, dims, type);
    const [n, C] = x.shape, S = x.shape.slice(2);
    const k = c.pool_size, s = c.strides ?? c.pool_size, p = c.padding;
    const OS = S.map((size, a) => poolSize(size, k[a], s[a], p[a], c.ceil_mode, type));
    const Q = product(S), P = product(OS), K = product(k);
    const out = new NDArray(x.dtype, [n, C, ...OS]);
    const at = new Array(dims);
    for (let b = 0; b < n * C; b++) {
      for (let q = 0; q < P; q++) {
        const start = unravel(q, OS).map((i, a) => i * s[a] - p[a]);
        let acc = kind === 'max' ? -Infinity : 0;
        for (let kk = 0; kk < K; kk++) {
          const offset = unravel(kk, k);
          let inside = true;
          for (let a = 0; a < dims; a++) {
            at[a] = start[a] + offset[a];
            if (at[a] < 0 || at[a] >= S[a]) inside = false;
          }
          if (!inside) continue;
          const v = x.data[b * Q + ravel(at, S)];
          if (kind === 'max') acc = Number.isNaN(v) || Number.isNaN(acc) ? NaN : Math.max(acc, v);
          else acc += v;
        }
        if (kind === 'avg') {
          let divisor = 1;
          for (let a = 0; a < dims; a++) {
            divisor *= c.count_include_pad
              ? Math.min(start[a] + k[a], S[a] + p[a]) - start[a]
              : Math.min(start[a] + k[a], S[a]) - Math.max(start[a], 0);
          }
          acc /= divisor;
        }
        out.data[b * P + q] = roundTo(x.dtype, acc);
      }
    }
    return out;
  };
}

function globalPool(kind, dims) {
  return (block, input) => {
    const x = floatInput(input);
    spatialInput(x, dims, block.node.type);
    const [n, C] = x.shape, Q = product(x.shape.slice(2));
    const out = new NDArray(x.dtype, [n, C, ...Array(dims).fill(1)]);
    for (let b = 0; b < n * C; b++) {
      let acc = kind === 'max' ? -Infinity : 0;
      for (let i = 0; i < Q; i++) {
        const v = x.data[b * Q + i];
        acc = kind === 'max' ? (Number.isNaN(v) || Number.isNaN(acc) ? NaN : Math.max(acc, v)) : acc + v;
      }
      out.data[b] = roundTo(x.dtype, kind === 'max' ? acc : acc / Q);
    }
    return out;
  };
}

// §3.2 ReflectionPad2D: row r of the output is input row |r − top| mirrored at the far edge.
function reflectionPad(block, input, c) {
  const x = floatInput(input);
  spatialInput(x, 2, 'ReflectionPad2D');
  const [n, C, H, W] = x.shape, [top, bottom, left, right] = c.padding.slice(4);
  if (Math.max(top, bottom) >= H || Math.max(left, right) >= W) {
    throw new InputError(`ReflectionPad2D: padding ${c.padding.slice(4).join(', ')} must be smaller than the sizes (${H}, ${W}) it mirrors`);
  }
  const mirror = (i, size) => (i < 0 ? -i : i >= size ? 2 * (size - 1) - i : i);
  const OH = H + top + bottom, OW = W + left + right;
  const out = new NDArray(x.dtype, [n, C, OH, OW]);
  for (let b = 0; b < n * C; b++) {
    for (let r = 0; r < OH; r++) {
      for (let q = 0; q < OW; q++) out.data[(b * OH + r) * OW + q] = x.data[(b * H + mirror(r - top, H)) * W + mirror(q - left, W)];
    }
  }
  return out;
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

// (x − mean) / sqrt(var + epsilon) · gamma + beta over the positions `at(j)`, j < count.
function normalise(x, out, count, at, epsilon, gamma, beta, dtype) {
  let mean = 0, variance = 0;
  for (let j = 0; j < count; j++) mean += x.data[at(j)];
  mean /= count;
  for (let j = 0; j < count; j++) variance += (x.data[at(j)] - mean) ** 2;
  variance /= count;
  const scale = 1 / Math.sqrt(variance + epsilon);
  for (let j = 0; j < count; j++) out.data[at(j)] = roundTo(dtype, (x.data[at(j)] - mean) * scale * gamma + beta);
}

// §3.2 InstanceNorm: per example and channel, over every other axis; gamma and beta always apply.
function instanceNorm(block, input, c) {
  const x = toDtype(input, c.dtype);
  if (x.ndim < 3 || c.axis < -x.ndim || c.axis >= x.ndim || normaliseAxis(c.axis, x.ndim) === 0) {
    throw new InputError(`InstanceNorm(axis=${c.axis}) needs (N, C, spatial...) input, got shape (${x.shape.join(', ')})`);
  }
  const axis = normaliseAxis(c.axis, x.ndim);
  const [outer, channels, inner] = around(x, axis);
  const gamma = block.params.get('gamma'), beta = block.params.get('beta');
  if (channels !== gamma.shape[0]) throw new ShapeMismatchError(`InstanceNorm: input has ${channels} channels, the parameters ${gamma.shape[0]}`);
  const n = x.shape[0], mid = outer / n;
  const out = new NDArray(c.dtype, x.shape.slice());
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < channels; ch++) {
      const at = (j) => ((b * mid + Math.floor(j / inner)) * channels + ch) * inner + (j % inner);
      normalise(x, out, mid * inner, at, c.epsilon, gamma.data[ch], beta.data[ch], c.dtype);
    }
  }
  return out;
}

// §3.2 GroupNorm: per example and group of consecutive channels; one gamma and beta per group.
function groupNorm(block, input, c) {
  const x = toDtype(input, c.dtype);
  const G = c.num_groups;
  if (x.ndim < 3 || x.shape[1] % G) {
    throw new InputError(`GroupNorm(num_groups=${G}) needs (N, C, spatial...) input with C divisible by ${G}, got shape (${x.shape.join(', ')})`);
  }
  const gamma = block.params.get('gamma').data, beta = block.params.get('beta').data;
  const size = x.size / (x.shape[0] * G);
  const out = new NDArray(c.dtype, x.shape.slice());
  for (let b = 0; b < x.shape[0] * G; b++) {
    normalise(x, out, size, (j) => b * size + j, c.epsilon, gamma[b % G], beta[b % G], c.dtype);
  }
  return out;
}

// §3.2 PReLU: one alpha for every element, or one per channel of axis 1 (axis 0 of 1-D input).
function prelu(block, input, c) {
  const x = toDtype(input, c.dtype);
  const alpha = block.params.get('alpha').data;
  let channel = () => 0;
  if (alpha.length > 1) {
    const axis = x.ndim > 1 ? 1 : 0;
    if (x.ndim < 1 || x.shape[axis] !== alpha.length) {
      throw new InputError(`PReLU with ${alpha.length} slopes needs ${alpha.length} channels on axis ${axis}, got shape (${x.shape.join(', ')})`);
    }
    const [, count, inner] = around(x, axis);
    channel = (i) => Math.floor(i / inner) % count;
  }
  const out = new NDArray(c.dtype, x.shape.slice());
  for (let i = 0; i < x.size; i++) {
    const v = x.data[i];
    out.data[i] = v > 0 ? v : roundTo(c.dtype, v * alpha[channel(i)]);
  }
  return out;
}

const SELU_ALPHA = 1.6732632423543772, SELU_SCALE = 1.0507009873554805;

function elementwise(input, fn) {
  const x = floatInput(input);
  const out = new NDArray(x.dtype, x.shape.slice());
  for (let i = 0; i < x.size; i++) out.data[i] = roundTo(x.dtype, fn(x.data[i]));
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
  BatchNorm: batchNorm,
  LayerNorm: layerNorm,
  InstanceNorm: instanceNorm,
  GroupNorm: groupNorm,
  ReflectionPad2D: reflectionPad,
  PReLU: prelu,
  SELU: (block, input) => elementwise(input, (v) => SELU_SCALE * (v > 0 ? v : SELU_ALPHA * Math.expm1(v))),
  Swish: (block, input, c) => elementwise(input, (v) => v / (1 + Math.exp(-v * c.beta))),
  GELU: (block, input, c) => (c.approximation === 'erf' ? activation('gelu', input)
    : elementwise(input, (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))))),
  Identity: (block, input) => input,
  Lambda: (block, input, c) => runOp(c.function, [input], c.attrs, {}),
  HybridLambda: (block, input, c) => runOp(c.function, [input], c.attrs, {}),
  Embedding: embedding,
  Flatten: flatten,
  Dropout: (block, input) => floatInput(input),
  Activation: (block, input, c) => activation(c.activation, input),
  LeakyReLU: (block, input, c) => activation('leaky_relu', input, c.alpha),
  ELU: (block, input, c) => activation('elu', input, c.alpha),
};
for (const dims of [1, 2, 3]) {
  LAYER_FORWARD[`Conv${dims}D`] = convolution(dims, false);
  LAYER_FORWARD[`Conv${dims}DTranspose`] = convolution(dims, true);
  LAYER_FORWARD[`MaxPool${dims}D`] = pool('max', dims);
  LAYER_FORWARD[`AvgPool${dims}D`] = pool('avg', dims);
  LAYER_FORWARD[`GlobalMaxPool${dims}D`] = globalPool('max', dims);
  LAYER_FORWARD[`GlobalAvgPool${dims}D`] = globalPool('avg', dims);
}
