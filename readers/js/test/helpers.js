// Shared by the tests: expected values from .npy files, and comparing results with them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fromBytes, loadNpy, NDArray } from '../src/index.js';

export function readExpected(path) {
  const { dtype, shape, data } = loadNpy(new Uint8Array(readFileSync(path)), path);
  return { dtype, shape, bytes: data, array: fromBytes(dtype, shape, data) };
}

// |got - want| <= atol + rtol*|want| element-wise; NaN matches NaN; infinities exactly;
// integers and booleans exactly; dtype and shape always exactly.
export function assertClose(got, want, [rtol, atol], where) {
  assert.ok(got instanceof NDArray, `${where}: not an array`);
  assert.equal(got.dtype, want.dtype, `${where}: dtype`);
  assert.deepEqual(got.shape, want.shape, `${where}: shape`);
  const kind = want.dtype.startsWith('float') || want.dtype.startsWith('complex');
  for (let i = 0; i < want.array.data.length; i++) {
    const g = got.data[i], w = want.array.data[i];
    if (!kind) {
      assert.equal(BigInt(g), BigInt(w), `${where}: element ${i}: ${g} != ${w}`);
      continue;
    }
    if (Number.isNaN(w) || !Number.isFinite(w)) {
      assert.ok(Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w)), `${where}: element ${i}: ${g} != ${w}`);
      continue;
    }
    assert.ok(Math.abs(g - w) <= atol + rtol * Math.abs(w), `${where}: element ${i}: ${g} differs from ${w}`);
  }
}
