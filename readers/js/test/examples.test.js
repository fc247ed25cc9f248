// The example archives of spec/examples (formats 1.0 and 1.1), checked as their README says.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { open } from '../src/index.js';
import { assertClose, readExpected } from './helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'spec', 'examples');

function openExample(file) {
  const path = join(ROOT, file);
  return open(new Uint8Array(readFileSync(path)), path);
}

for (const name of ['mlp', 'cnn', 'graph']) {
  for (const file of [`${name}.mpk`, `${name}-1.1.mpk`]) {
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

for (const file of ['tensors.mpk', 'tensors-1.1.mpk']) {
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
