// The refusals of the Gluon additions (spec/FORMAT.md §3.2 recurrent layers, §3.3 size
// expressions and trees, §3.4 ops) that the conformance vectors do not reach: each asserts
// the spec's error class and what the message names.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError, NDArray, SchemaError } from '../src/index.js';
import { layerNode } from '../src/manifest.js';
import { buildModel } from '../src/model.js';
import { runOp } from '../src/ops.js';
import { parseManifestText } from '../src/text.js';

const f32 = (shape, values) => new NDArray('float32', shape, Float32Array.from(values ?? Array(shape.reduce((a, b) => a * b, 1)).fill(0)));
const i64 = (values) => new NDArray('int64', [values.length], BigInt64Array.from(values.map(BigInt)));
const refused = (call, ErrorClass, fragment) => assert.throws(call, (e) => e instanceof ErrorClass && e.message.includes(fragment));

// A root Graph with one input x of shape `shape` and the given nodes; its output is `out`.
function graph(shape, nodes, out, children = {}) {
  const text = JSON.stringify({
    type: 'Graph', children,
    config: { graph: { inputs: [{ name: 'x', dtype: 'float32', shape }], nodes, outputs: { kind: 'single', values: [out] } } },
  });
  return layerNode(parseManifestText(new TextEncoder().encode(text), 'test', 100000), 'architecture');
}
const run = (root, ...inputs) => buildModel(root, new Map())(...inputs);

test('a size expression evaluates at the bound sizes', () => {
  const root = graph(['batch', 2], [{ op: 'reshape', inputs: ['x'], outputs: ['y'], attrs: { shape: ['2*batch/4', -1] } }], 'y');
  assert.deepEqual(run(root, f32([4, 2])).shape, [2, 4]);
});

test('a size expression whose division is not exact is refused', () => {
  const root = graph(['batch', 2], [{ op: 'reshape', inputs: ['x'], outputs: ['y'], attrs: { shape: ['batch/2', -1] } }], 'y');
  refused(() => run(root, f32([3, 2])), InputError, 'not divisible by 2');
});

test('a size expression that comes out negative is refused', () => {
  const root = graph(['batch'], [{ op: 'full', outputs: ['y'], attrs: { shape: ['batch-5'], value: 0.0, dtype: 'float32' } }], 'y');
  refused(() => run(root, f32([3])), InputError, 'negative');
});

test('a size expression naming a size no input binds is refused when read', () => {
  refused(() => graph(['batch'], [{ op: 'full', outputs: ['y'], attrs: { shape: ['seq'], value: 0.0, dtype: 'float32' } }], 'y'),
    SchemaError, 'size name "seq"');
});

test('split needs exactly one of sections and indices, and one output per piece', () => {
  refused(() => graph([4], [{ op: 'split', inputs: ['x'], outputs: ['a', 'b'], attrs: {} }], 'a'), SchemaError, 'exactly one of sections');
  refused(() => graph([4], [{ op: 'split', inputs: ['x'], outputs: ['a'], attrs: { sections: 2 } }], 'a'), SchemaError, 'exactly 2 outputs');
  refused(() => runOp('split', [f32([5])], { sections: 2, indices: null, axis: 0 }), InputError, 'equal sections');
});

test('a layer call whose result has another structure than its tree is refused', () => {
  const cell = { type: 'GRUCell', config: { hidden_size: 2, input_size: 2 } };
  const root = graph(['batch', 2], [
    { op: 'full', outputs: ['h'], attrs: { shape: ['batch', 2], value: 0.0, dtype: 'float32' } },
    { op: 'layer', inputs: ['x', 'h'], outputs: ['y', 'h1', 'h2'], attrs: { block: 'cell', args: ['value', { kind: 'list', items: ['value'] }], returns: 'tree',
      tree: { kind: 'tuple', items: ['value', { kind: 'list', items: ['value', 'value'] }] } } },
  ], 'y', { cell });
  const weights = new Map([['cell.i2h_weight', f32([6, 2])], ['cell.h2h_weight', f32([6, 2])], ['cell.i2h_bias', f32([6])], ['cell.h2h_bias', f32([6])]]);
  refused(() => buildModel(root, weights)(f32([1, 2])), InputError, 'a list of 2 items');
});

test('ops sized by attributes refuse an output over the limit before allocating', () => {
  refused(() => runOp('full', [], { shape: [2 ** 20, 2 ** 20], value: { kind: 'float', value: 0 }, dtype: 'float32' }), InputError, 'limit');
  refused(() => runOp('tile', [f32([2 ** 16])], { reps: [2 ** 30] }), InputError, 'limit');
});

test('the op refusals of §3.4', () => {
  refused(() => runOp('arange', [], { start: 0, stop: 3, step: 0, dtype: 'int64' }), InputError, 'step of 0');
  refused(() => runOp('take', [f32([3]), i64([3])], { axis: 0, mode: 'raise' }), InputError, 'out of range');
  assert.deepEqual(Array.from(runOp('take', [f32([3], [1, 2, 3]), i64([5, -4])], { axis: 0, mode: 'wrap' }).data), [3, 3]);
  refused(() => runOp('topk', [f32([3])], { axis: -1, k: 4, ret_typ: 'indices', is_ascend: false, dtype: 'float32' }), InputError, 'larger than the axis');
  refused(() => runOp('embedding', [i64([3]), f32([3, 2])], { input_dim: 0, output_dim: 0 }), InputError, 'out of range');
  refused(() => runOp('batch_dot', [f32([2, 2]), f32([2, 2])], { transpose_a: false, transpose_b: false }), InputError, 'at least 3');
  refused(() => runOp('broadcast_to', [f32([3])], { shape: [2, 2] }), InputError, 'broadcast');
  refused(() => runOp('sequence_mask', [f32([3, 2]), f32([2], [1, 4])], { use_sequence_length: true, value: 0, axis: 0 }), InputError, 'outside [0, 3]');
  refused(() => runOp('getitem', [f32([3]), i64([3])], { index: [{ array: 0 }] }), InputError, 'out of range');
});

test('a BidirectionalCell is only unrolled, never stepped', () => {
  const cell = () => ({ type: 'RNNCell', config: { hidden_size: 1, input_size: 1 } });
  const root = graph(['batch', 1], [{ op: 'layer', inputs: ['x'], outputs: ['y'], attrs: { block: 'bi' } }], 'y',
    { bi: { type: 'BidirectionalCell', children: { l_cell: cell(), r_cell: cell() } } });
  refused(() => run(root, f32([1, 1])), InputError, 'unrolled');
});

test('a wrapping cell without its base_cell is refused when read', () => {
  const text = JSON.stringify({ type: 'ResidualCell', children: { other: { type: 'GRUCell', config: { hidden_size: 1 } } } });
  refused(() => layerNode(parseManifestText(new TextEncoder().encode(text), 'test', 1000), 'architecture'), SchemaError, 'exactly the children base_cell');
});
