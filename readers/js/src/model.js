// Models, spec/FORMAT.md §3: the parameters an architecture creates (§3.1), the layers'
// inference semantics (§3.2) and graphs (§3.3), built from a checked LayerNode tree.
import { FormatError, InputError, SchemaError } from './errors.js';
import { LAYER_FORWARD } from './layers.js';
import { NDArray, asArray, isScalar, LONE } from './ndarray.js';
import { runOp } from './ops.js';
import { RECURRENT } from './recurrent.js';

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
    case 'RNN': case 'LSTM': case 'GRU': return fusedParameters(c, { RNN: 1, LSTM: 4, GRU: 3 }[node.type]);
    case 'RNNCell': case 'LSTMCell': case 'GRUCell': {
      const G = { RNNCell: 1, LSTMCell: 4, GRUCell: 3 }[node.type] * c.hidden_size;
      return [['i2h_weight', [G, c.input_size]], ['h2h_weight', [G, c.hidden_size]], ['i2h_bias', [G]], ['h2h_bias', [G]]].map((p) => [...p, c.dtype]);
    }
    case 'Graph': return c.parameters.map(([name, p]) => [name, p.shape, p.dtype]);
    default: return [];
  }
}

// §3.2 RNN, LSTM, GRU: per layer k and direction d, the weights of G gates of H units.
function fusedParameters(c, gates) {
  const H = c.hidden_size, G = gates * H, P = c.projection_size ?? null, dirs = c.bidirectional ? ['l', 'r'] : ['l'];
  const out = [];
  for (let k = 0; k < c.num_layers; k++) {
    for (const d of dirs) {
      const inputs = k === 0 ? c.input_size : (P ?? H) * dirs.length;
      out.push([`${d}${k}_i2h_weight`, [G, inputs]], [`${d}${k}_h2h_weight`, [G, P ?? H]], [`${d}${k}_i2h_bias`, [G]], [`${d}${k}_h2h_bias`, [G]]);
      if (P !== null) out.push([`${d}${k}_h2r_weight`, [P, H]]);
    }
  }
  return out.map((p) => [...p, c.dtype]);
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
export function checkTensorsFit(root, weights, where, ties = null) {
  const byName = new Map(weights.map((t) => [t.name, t]));
  const expected = expectedTensors(root);
  const names = new Set(expected.map((e) => e.name));
  for (const [alias, target] of ties ?? []) {
    if (!names.has(alias) || alias.includes('#')) throw new FormatError(`${where}: tie ${JSON.stringify(alias)} → ${JSON.stringify(target)} names no parameter of the architecture`);
  }
  for (const e of expected) {
    const tied = ties?.get(e.name);
    const t = byName.get(tied ?? e.name);
    if (!t) throw new FormatError(`${where}: weights do not fit the architecture: ${e.constant ? 'graph constant' : 'parameter'} ${JSON.stringify(e.name)} is missing`);
    if (e.constant) continue;
    if (t.dtype !== e.dtype) throw new FormatError(`${where}: weights do not fit the architecture: ${e.name} is ${t.dtype}, the layer's is ${e.dtype}`);
    if (t.shape.length !== e.shape.length || e.shape.some((n, k) => n !== 0 && BigInt(n) !== BigInt(t.shape[k]))) {
      throw new FormatError(`${where}: weights do not fit the architecture: ${e.name} has shape (${t.shape.join(', ')}), the config implies (${e.shape.join(', ')})`);
    }
  }
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

export function buildModel(root, tensors, ties = null) {
  const make = (node, path) => {
    const prefix = path ? `${path}.` : '';
    const block = { node, path, params: new Map(), children: new Map(), constants: [] };
    for (const [name] of ownParameters(node)) block.params.set(name, tensors.get(ties?.get(prefix + name) ?? prefix + name));
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
  const type = block.node.type;
  if (type === 'Graph') return runGraph(block, args);
  if (type in RECURRENT) return RECURRENT[type](block, args, call);
  if (args.length !== 1 || !(args[0] instanceof NDArray)) throw new InputError(`${type} takes one array`);
  if (type === 'Sequential') {
    let x = args[0];
    for (const child of block.children.values()) x = call(child, [x]);
    return x;
  }
  if (type === 'Concatenate') {
    const outputs = [...block.children.values()].map((child) => call(child, args));
    if (!outputs.length) throw new InputError('Concatenate has no children to join');
    return runOp('concatenate', outputs, { axis: block.node.config.axis });
  }
  return LAYER_FORWARD[type](block, args[0], block.node.config);
}

// §3.3 trees: a structure's values, depth first, checked against the tree; and back.
function flattenTree(value, tree, owner, out = []) {
  if (tree === 'value') {
    if (!(value instanceof NDArray) && !isScalar(value)) throw new InputError(`${owner}: an array is expected where the structure has a value`);
    out.push(value);
  } else if (tree === 'none') {
    if (value !== null && value !== undefined) throw new InputError(`${owner}: None is expected in the structure`);
  } else {
    if (!Array.isArray(value) || value.length !== tree.items.length) {
      throw new InputError(`${owner}: a ${tree.kind} of ${tree.items.length} items is expected in the structure`);
    }
    tree.items.forEach((item, k) => flattenTree(value[k], item, owner, out));
  }
  return out;
}

function buildTree(tree, values) {
  if (tree === 'value') return values.shift();
  if (tree === 'none') return null;
  const items = tree.items.map((item) => buildTree(item, values));
  items.kind = tree.kind;
  return items;
}

// §3.3 size expressions in attrs, evaluated at the sizes the graph's inputs bound.
function resolveSizes(value, sizes) {
  if (Array.isArray(value)) return value.map((v) => resolveSizes(v, sizes));
  if (value === null || typeof value !== 'object') return value;
  if (value.sizeExpr) {
    for (const name of value.names) if (!(name in sizes)) throw new InputError(`the size name ${name} is not bound by the graph's inputs`);
    const product = value.c * value.names.reduce((p, name) => p * sizes[name], 1);
    if (product % value.d) throw new InputError(`size ${value.sizeExpr}: ${product} is not divisible by ${value.d}`);
    const result = product / value.d + value.e;
    if (result < 0) throw new InputError(`size ${value.sizeExpr} is negative here (${result})`);
    return result;
  }
  if (isScalar(value)) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveSizes(v, sizes)]));
}

function runGraph(block, given) {
  const graph = block.node.config.graph;
  const owner = block.node.config.source_class;
  if (graph === null) throw new InputError(`${owner} was never called while tracing; it has no graph to run`);
  let args = given;
  if (graph.args !== null) {
    if (given.length !== graph.args.length) throw new InputError(`${owner} expects ${graph.args.length} arguments, got ${given.length}`);
    args = given.flatMap((arg, k) => flattenTree(arg, graph.args[k], owner));
  }
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
      const { args: shape, returns, tree } = node.attrs;
      const rest = inputs.slice();
      const callArgs = shape === null ? inputs : shape.map((t) => buildTree(t, rest));
      const result = call(resolveBlock(block, node.attrs.block), callArgs);
      if (returns === 'single') results = [result];
      else if (returns === 'tree') results = flattenTree(result, tree, `${owner}: the call of ${node.attrs.block}`);
      else if (Array.isArray(result) && result.length === node.outputs.length) results = result;
      else throw new InputError(`${owner}: a layer call returning ${returns} needs a sequence of ${node.outputs.length} values`);
    } else if (node.op === 'parameter') results = [params.get(node.attrs.name)];
    else if (node.op === 'constant') results = [block.constants[constantIndex(node.attrs.name, block.constants.length)]];
    else if (node.op === 'scalar') results = [{ scalar: true, ...node.attrs.value }];
    else {
      const result = runOp(node.op, inputs, resolveSizes(node.attrs, sizes));
      results = node.outputs.length === 1 && !Array.isArray(result) ? [result] : result;
    }
    node.outputs.forEach((name, k) => values.set(name, results[k]));
  }
  const outputs = graph.outputs.values.map((name) => {
    const v = values.get(name);
    return isScalar(v) ? asArray(v, LONE[v.kind]) : v;
  });
  if (graph.outputs.kind === 'single') return outputs[0];
  if (graph.outputs.kind === 'dict') return new Map(graph.outputs.keys.map((key, k) => [key, outputs[k]]));
  if (graph.outputs.kind === 'tree') return buildTree(graph.outputs.tree, outputs);
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
