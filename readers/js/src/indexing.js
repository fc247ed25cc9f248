// §3.4 `getitem`: basic indexing (int, slice, newaxis, ellipsis) and integer (advanced)
// indexing with index arrays, as NumPy's.
import { InputError } from './errors.js';
import { INFO, NDArray, asArray, broadcastIndex, broadcastShapes, strides } from './ndarray.js';

export function slicePositions([start, stop, step], n) {
  step = step ?? 1;
  if (step === 0) throw new InputError('getitem: a slice step of 0');
  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);
  const fix = (v, lo, hi) => clamp(v < 0 ? v + n : v, lo, hi);
  let a, b;
  if (step > 0) {
    a = start === null ? 0 : fix(start, 0, n);
    b = stop === null ? n : fix(stop, 0, n);
  } else {
    a = start === null ? n - 1 : fix(start, -1, n - 1);
    b = stop === null ? -1 : fix(stop, -1, n - 1);
  }
  const out = [];
  for (let i = a; step > 0 ? i < b : i > b; i += step) out.push(i);
  return out;
}

function indexArray(value, k) {
  if (value === undefined) throw new InputError(`getitem: index array ${k} is not an input`);
  const a = asArray(value);
  if (INFO[a.dtype].kind !== 'i' && INFO[a.dtype].kind !== 'u') {
    throw new InputError(`getitem: index array ${k} must hold integers, not ${a.dtype}`);
  }
  return a;
}

const inRange = (i, n) => {
  const j = i < 0 ? i + n : i;
  if (j < 0 || j >= n) throw new InputError(`getitem: index ${i} is out of range for length ${n}`);
  return j;
};

export function getitem(value, index, arrays = []) {
  const x = asArray(value);
  if (index.filter((i) => i.ellipsis).length > 1) throw new InputError('getitem: more than one ellipsis');
  const consumes = (i) => 'int' in i || 'slice' in i || 'array' in i;
  const consuming = index.filter(consumes).length;
  if (consuming > x.ndim) throw new InputError(`getitem: ${consuming} indices for ${x.ndim} dimensions`);
  const items = [];
  for (const item of index) {
    if (item.ellipsis) for (let k = 0; k < x.ndim - consuming; k++) items.push({ slice: [null, null, null] });
    else items.push(item);
  }
  for (let k = items.filter(consumes).length; k < x.ndim; k++) items.push({ slice: [null, null, null] });
  const advanced = items.some((i) => 'array' in i);
  // Advanced items (index arrays, and ints among them) broadcast together into one block.
  const isAdvanced = (i) => 'array' in i || (advanced && 'int' in i);
  const adv = items.map((item, k) => (isAdvanced(item) ? k : -1)).filter((k) => k >= 0);
  const advArrays = adv.map((k) => (items[k].array !== undefined ? indexArray(arrays[items[k].array], items[k].array) : null));
  const block = advanced ? broadcastShapes(...advArrays.map((a) => (a ? a.shape : []))) : [];
  const adjacent = adv.every((k, j) => j === 0 || k === adv[j - 1] + 1);
  // Output dims: {positions, axis} for sliced axes, {one} for newaxis, {block} once.
  const dims = [];
  let axis = 0, blockPlaced = false;
  const fixed = new Map(); // input axis -> position (plain int items)
  const advAxes = [];
  if (advanced && !adjacent) { dims.push({ block: true }); blockPlaced = true; }
  for (const item of items) {
    if (item.newaxis) { dims.push({ one: true }); continue; }
    const n = x.shape[axis];
    if (isAdvanced(item)) {
      advAxes.push(axis);
      if (!blockPlaced) { dims.push({ block: true }); blockPlaced = true; }
    } else if ('int' in item) fixed.set(axis, inRange(item.int, n));
    else dims.push({ positions: slicePositions(item.slice, n), axis });
    axis++;
  }
  const outShape = dims.flatMap((d) => (d.block ? block : d.one ? [1] : [d.positions.length]));
  const blockSize = block.reduce((a, b) => a * b, 1);
  const advIndex = advArrays.map((a) => (a ? broadcastIndex(a.shape, block) : null));
  const st = strides(x.shape);
  const out = new NDArray(x.dtype, outShape);
  const pos = new Array(outShape.length).fill(0);
  let base = 0;
  for (const [k, i] of fixed) base += i * st[k];
  for (let o = 0; o < out.size; o++) {
    let flat = base, at = 0;
    for (const d of dims) {
      if (d.block) {
        let b = 0;
        for (let j = 0; j < block.length; j++) b = b * block[j] + pos[at + j];
        adv.forEach((k, j) => {
          const n = x.shape[advAxes[j]];
          const raw = advArrays[j] ? Number(advArrays[j].data[advIndex[j][b]]) : items[k].int;
          flat += inRange(raw, n) * st[advAxes[j]];
        });
        at += block.length;
      } else {
        if (d.positions) flat += d.positions[pos[at]] * st[d.axis];
        at++;
      }
    }
    out.data[o] = x.data[flat];
    for (let k = outShape.length - 1; k >= 0; k--) { if (++pos[k] < outShape[k]) break; pos[k] = 0; }
  }
  if (blockSize === 0 && out.size) throw new InputError('getitem: empty index arrays');
  return out;
}
