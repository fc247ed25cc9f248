// The conformance vectors of spec/conformance/index.json: every valid archive read exactly,
// every invalid one refused with the error class and at the stage the index names.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sha256 } from '../src/checksum.js';
import { open } from '../src/index.js';
import { assertClose, readExpected } from './helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'spec', 'conformance');
const INDEX = JSON.parse(readFileSync(join(ROOT, 'index.json'), 'utf8'));

function load(vector) {
  const path = join(ROOT, vector.archive);
  return { path, bytes: new Uint8Array(readFileSync(path)) };
}

for (const vector of INDEX.valid) {
  test(`valid: ${vector.name}`, () => {
    const { path, bytes } = load(vector);
    const archive = open(bytes, path);
    const m = archive.manifest;
    assert.equal(m.kind, vector.kind);
    assert.equal(m.format_version, vector.format_version);
    assert.deepEqual(Object.fromEntries(m.metadata), vector.metadata);
    assert.equal(m.layout, vector.layout ?? null);
    assert.deepEqual(m.weights.map((t) => t.name), vector.tensors.map((t) => t.name));
    const tensors = archive.tensors({ checkSha256: true });
    for (const t of vector.tensors) {
      const got = tensors.get(t.name), want = readExpected(join(ROOT, t.file));
      assert.equal(got.dtype, want.dtype, t.name);
      assert.deepEqual(got.shape, want.shape, t.name);
      assert.deepEqual(Buffer.from(got.bytes), Buffer.from(want.bytes), `${t.name}: bytes`);
      assert.equal(sha256(got.bytes), t.sha256, `${t.name}: sha256`);
    }
    open(bytes, path).verify();
    if (vector.kind !== 'model') return;
    const model = archive.model();
    vector.runs.forEach((run, number) => {
      const inputs = run.inputs.map((p) => readExpected(join(ROOT, p)).array);
      if (run.error) {
        assert.throws(() => model(...inputs), (e) => e.name === run.error || assert.fail(`run ${number}: ${e.name}: ${e.message}`));
        return;
      }
      const result = model(...inputs);
      const { kind, keys, values } = run.outputs;
      let got;
      if (kind === 'dict') {
        assert.ok(result instanceof Map, `run ${number}: a mapping`);
        assert.deepEqual([...result.keys()], keys);
        got = [...result.values()];
      } else if (kind === 'single') got = [result];
      else {
        assert.ok(Array.isArray(result) && result.kind === kind, `run ${number}: a ${kind}`);
        got = result;
      }
      assert.equal(got.length, values.length);
      values.forEach((file, k) => {
        const want = readExpected(join(ROOT, file));
        const tolerance = run.tolerance ? [run.tolerance.rtol, run.tolerance.atol] : INDEX.tolerances[want.dtype] ?? [0, 0];
        assertClose(got[k], want, tolerance, `${vector.name} run ${number} output ${keys ? keys[k] : k}`);
      });
    });
  });
}

function refusal(call) {
  try {
    call();
  } catch (error) {
    if (!error.name || error.name === 'Error' || error.name === 'TypeError' || error.name === 'RangeError') throw error;
    return error;
  }
  return null;
}

for (const vector of INDEX.invalid) {
  test(`invalid: ${vector.name} (${vector.stage}, ${vector.error})`, () => {
    const { path, bytes } = load(vector);
    const limits = vector.limits ?? {};
    const stages = {
      open: () => open(bytes, path, limits),
      load: () => {
        const a = open(bytes, path, limits);
        return a.manifest.kind === 'model' ? a.model() : a.tensors();
      },
      sha256: () => {
        const a = open(bytes, path, limits);
        return a.manifest.kind === 'model' ? a.model({ checkSha256: true }) : a.tensors({ checkSha256: true });
      },
      verify: () => open(bytes, path, limits).verify(),
    };
    const order = ['open', 'load', 'sha256', 'verify'];
    const at = order.indexOf(vector.stage);
    order.forEach((stage, k) => {
      const error = refusal(stages[stage]);
      if (k < at) {
        assert.equal(error, null, `${stage} refused what only ${vector.stage} must: ${error && `${error.name}: ${error.message}`}`);
      } else if (k === at) {
        assert.ok(error, `${stage} accepted it`);
        assert.equal(error.name, vector.error, `${stage}: ${error.message}`);
        assert.ok(error.message.includes(path), `${stage}: the message does not name the file: ${error.message}`);
      } else {
        assert.ok(error, `${stage} accepted it`);
      }
    });
  });
}
