// Format 1.5's tensor offsets (FORMAT.md §2.2): kept exact, and checked against the bundle's
// directory when it is read, naming the file, the tensor and both offsets.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { open } from '../src/index.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'spec', 'conformance');
const read = (name) => {
  const path = join(ROOT, name);
  return [new Uint8Array(readFileSync(path)), path];
};

test('an offset above 2^53 is kept exactly, not rounded to a double', () => {
  const [bytes, path] = read('invalid/offset-beyond-2-53.mpk');
  const archive = open(bytes, path);
  assert.equal(archive.manifest.weights[0].offset, 2n ** 53n + 1n);
  assert.throws(() => archive.model(), (e) => e.name === 'FormatError'
    && e.message.includes(path) && e.message.includes("offset 9007199254740993 for tensor \"0.weight\", whose member starts at offset 0"));
});

test('a recorded offset equals where the directory puts the member', () => {
  const [bytes, path] = read('valid/offsets-model/archive.mpk');
  const archive = open(bytes, path);
  const { tensors } = archive.openBundle();
  for (const t of archive.manifest.weights) assert.equal(t.offset, BigInt(tensors.get(t.name).headerOffset), t.name);
});

test('a tensor without an offset has null', () => {
  const [bytes, path] = read('valid/craft-offsets-some/archive.mpk');
  const missing = open(bytes, path).manifest.weights.filter((t) => t.offset === null).map((t) => t.name);
  assert.deepEqual(missing, ['0.bias', '1.running_var']);
});
