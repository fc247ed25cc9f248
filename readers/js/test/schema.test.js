// The committed JSON Schema compiles in Ajv's strict draft 2020-12 mode and accepts every
// manifest of spec/examples and of the valid conformance vectors (FORMAT.md §2-§3).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import { parseManifestText } from '../src/text.js';
import { readMember, readZip } from '../src/zip.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const SCHEMA = JSON.parse(readFileSync(join(REPO, 'schema', 'manifest.schema.json'), 'utf8'));
const INDEX = JSON.parse(readFileSync(join(REPO, 'spec', 'conformance', 'index.json'), 'utf8'));

// A manifest as plain JSON values (Maps to objects, integers to numbers); null when it holds a
// non-finite float, which only the block form can say and JSON's data model (so Ajv) cannot.
function plain(value) {
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [k, plain(v)]));
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'number' && !Number.isFinite(value)) throw new RangeError('non-finite');
  return typeof value === 'bigint' ? Number(value) : value;
}

function manifestOf(path) {
  const zip = readZip(new Uint8Array(readFileSync(path)), path, { kind: 'an archive', maxMembers: 16, tooMany: Error, maxRatio: 100 });
  const member = zip.members.find((m) => m.name === 'manifest.yaml');
  return plain(parseManifestText(readMember(zip, member), path, 2_000_000));
}

const archives = [
  ...readdirSync(join(REPO, 'spec', 'examples')).filter((f) => f.endsWith('.mpk')).map((f) => join(REPO, 'spec', 'examples', f)),
  // The schema describes this version's manifests; a newer minor version may add fields (§6).
  ...INDEX.valid.filter((v) => ['1.0', '1.1', '1.5'].includes(v.format_version)).map((v) => join(REPO, 'spec', 'conformance', v.archive)),
];

test('the schema compiles in strict mode and accepts every valid manifest', () => {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  const validate = ajv.compile(SCHEMA);
  let checked = 0;
  for (const path of archives) {
    let manifest;
    try {
      manifest = manifestOf(path);
    } catch (error) {
      if (error instanceof RangeError) continue; // outside JSON's data model (FORMAT.md §2)
      throw error;
    }
    assert.ok(validate(manifest), `${path}: ${ajv.errorsText(validate.errors)}`);
    checked += 1;
  }
  assert.ok(checked >= archives.length - 1, `only ${checked} of ${archives.length} manifests were checked`);
});

test('the schema refuses what FORMAT.md §2.2 and §6 require', () => {
  const ajv = new Ajv2020({ strict: true });
  const validate = ajv.compile(SCHEMA);
  const good = manifestOf(join(REPO, 'spec', 'examples', 'mlp-1.1.mpk'));
  assert.ok(validate(good));
  for (const field of ['format', 'format_version', 'producer', 'kind', 'weights']) {
    const copy = { ...good };
    delete copy[field];
    assert.ok(!validate(copy), `a manifest without ${field} validates`);
  }
  for (const version of ['01.1', '1.01', '1', '1.1.0', '1234567.0']) {
    assert.ok(!validate({ ...good, format_version: version }), `format_version ${version} validates`);
  }
});
