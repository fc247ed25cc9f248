// The layers of spec/FORMAT.md §3.2: each a function (block, input, config) -> output, where
// block.params maps the layer's parameter names (§3.1) to arrays.
import { InputError, ShapeMismatchError } from './errors.js';
import { INFO, NDArray, asArray, cast, isFloat, normaliseAxis, roundTo } from './ndarray.js';
import { activation, floatInput, runOp } from './ops.js';

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

export const LAYER_FORWARD = {
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
  Lambda: (block, input, c) => runOp(c.function, [input], c.attrs),
  HybridLambda: (block, input, c) => runOp(c.function, [input], c.attrs),
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
