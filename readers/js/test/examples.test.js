// The example archives of spec/examples (formats 1.0 to 1.5), checked as their README says.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fromBytes, open } from '../src/index.js';
import { assertClose, readExpected } from './helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'spec', 'examples');

function openExample(file) {
  const path = join(ROOT, file);
  return open(new Uint8Array(readFileSync(path)), path);
}

const VERSIONS = ['', '-1.1', '-1.2', '-1.3', '-1.5'];
for (const name of ['mlp', 'cnn', 'graph', 'tied']) {
  for (const file of VERSIONS.map((v) => `${name}${v}.mpk`)) {
    test(`example ${file}`, (t) => {
      let archive;
      try {
        archive = openExample(file);
      } catch (error) {
        if (error.code === 'ENOENT') return t.skip('not in this format version');
        throw error;
      }
      assert.deepEqual(Object.fromEntries(archive.manifest.metadata), { example: name });
      archive.verify();
      const x = readExpected(join(ROOT, `${name}.input.npy`)).array;
      const want = readExpected(join(ROOT, `${name}.output.npy`));
      assertClose(archive.model({ checkSha256: true })(x), want, [1e-5, 1e-6], file);
    });
  }
}

for (const file of VERSIONS.map((v) => `tensors${v}.mpk`)) {
  test(`example ${file}`, () => {
    const archive = openExample(file);
    archive.verify();
    assert.equal(archive.manifest.layout, 'dict');
    const t = archive.tensors({ checkSha256: true });
    assert.deepEqual([...t.keys()], ['ids', 'mask', 'scale', 'empty', 'specials']);
    assert.deepEqual([...t.get('ids').array.data], [0n, 1n, 2n, 3n, 4n, 5n]);
    assert.deepEqual(t.get('ids').shape, [2, 3]);
    assert.deepEqual([...t.get('mask').array.data], [1, 0, 1]);
    assert.equal(t.get('scale').dtype, 'float16');
    assert.deepEqual(t.get('scale').shape, []);
    assert.equal(t.get('scale').array.data[0], 0.5);
    assert.deepEqual(t.get('empty').shape, [0, 4]);
    const s = t.get('specials').array.data;
    assert.ok(Number.isNaN(s[0]) && Object.is(s[1], -0) && s[2] === Infinity && s[3] === -Infinity && s[4] === 5e-324);
  });
}

test('example tied-1.3.mpk: the tied layers read the one stored tensor', () => {
  const archive = openExample('tied-1.3.mpk');
  assert.deepEqual(Object.fromEntries(archive.manifest.ties), { '2.weight': '1.weight', '2.bias': '1.bias' });
  assert.ok(!archive.manifest.weights.some((t) => t.name.startsWith('2.')));
});

for (const file of ['checkpoint-1.2.mpk', 'checkpoint-1.3.mpk', 'checkpoint-1.5.mpk']) {
  test(`example ${file}`, () => {
    const archive = openExample(file);
    archive.verify();
    const { checkpoint } = archive.manifest;
    assert.equal(checkpoint.step, 3);
    assert.equal(checkpoint.trainer.optimizer, 'adam');
    assert.equal(checkpoint.random.seed, 0);
    assert.deepEqual([...checkpoint.rng.keys()], ['noise']);
    assert.equal(checkpoint.data.length, 1);
    assert.ok(archive.manifest.weights.some((t) => t.name === 'data:0:order'));
    const model = archive.model({ checkSha256: true });
    const y = model(fromBytes('float32', [1, 4], new Uint8Array(16)));
    assert.deepEqual(y.shape, [1, 3]);
  });
}
