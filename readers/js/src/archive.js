// Reading an archive, spec/FORMAT.md §1, §4, §6, §7, §8, in the order §6 gives: the container,
// the manifest member, its text, the version, the member set, the zip comment, the schema; then
// (loading) the bundle, each tensor, the tensors against the architecture.
import { FormatError, IntegrityError, LimitError, SchemaError } from './errors.js';
import { sha256 } from './checksum.js';
import { checkVersion, validateManifest } from './manifest.js';
import { buildModel, checkGraphReferences, checkTensorsFit } from './model.js';
import { fromBytes } from './ndarray.js';
import { readNpy } from './npy.js';
import { parseManifestText } from './text.js';
import { readMember, readZip } from './zip.js';

export const DEFAULT_LIMITS = {
  max_manifest_bytes: 64 * 2 ** 20,
  max_manifest_nodes: 2_000_000,
  max_tensors: 100_000,
  max_total_bytes: 64 * 2 ** 30,
  max_compression_ratio: 100,
};
const MANIFEST = 'manifest.yaml', WEIGHTS = 'weights.npz';
const HASH_COMMENT = /^modelpack-manifest-sha256:([0-9a-f]{64})$/;

// Open: everything up to a validated manifest (§6's order). Returns an object whose methods
// read the tensors and the model.
export function openArchive(bytes, where, limits = {}) {
  limits = { ...DEFAULT_LIMITS, ...limits };
  const hint = (name) => `; raise limits.${name} (now ${limits[name]}) to allow more`;
  const zip = readZip(bytes, where, {
    kind: 'a modelpack archive',
    maxMembers: 16,
    tooMany: (count) => new FormatError(`${where}: holds ${count} members; a modelpack archive holds only ${MANIFEST}, ${WEIGHTS}`),
    maxRatio: limits.max_compression_ratio,
    ratioHint: hint('max_compression_ratio'),
  });
  const members = new Map(zip.members.map((m) => [m.name, m]));
  const manifestMember = members.get(MANIFEST);
  if (!manifestMember) throw new FormatError(`${where}: member ${MANIFEST} is missing`);
  if (manifestMember.size > limits.max_manifest_bytes) {
    throw new LimitError(`${where}: member ${MANIFEST} is ${manifestMember.size} bytes, over the limit${hint('max_manifest_bytes')}`);
  }
  const raw = readMember(zip, manifestMember);
  const mwhere = `${where}: ${MANIFEST}`;
  const doc = parseManifestText(raw, mwhere, limits.max_manifest_nodes);
  const version = checkVersion(doc, mwhere);
  for (const name of members.keys()) {
    if (name !== MANIFEST && name !== WEIGHTS) throw new FormatError(`${where}: unexpected member ${JSON.stringify(name)}`);
  }
  if (!members.has(WEIGHTS)) throw new FormatError(`${where}: member ${WEIGHTS} is missing`);
  const comment = new TextDecoder('latin1').decode(zip.comment);
  const match = HASH_COMMENT.exec(comment);
  if (match) {
    const actual = sha256(raw);
    if (actual !== match[1]) throw new IntegrityError(`${where}: member ${MANIFEST} is damaged: its SHA-256 is ${actual}, the comment records ${match[1]}`);
  } else if (version[0] > 1 || version[1] >= 1) {
    throw new IntegrityError(`${where}: format ${version.join('.')} archives record the manifest's SHA-256 in the zip comment, found ${comment ? JSON.stringify(comment.slice(0, 80)) : 'no comment'}`);
  }
  const manifest = validateManifest(doc, mwhere, version);
  return new Archive(where, zip, members, manifest, limits);
}

class Archive {
  constructor(where, zip, members, manifest, limits) {
    Object.assign(this, { where, zip, members, manifest, limits });
    this.bundle = null;
  }

  // The bundle's vetted directory (§4, §8): stored in place, or inflated whole (CRC-checked).
  openBundle({ checkStoredCrc = false } = {}) {
    if (this.bundle) return this.bundle;
    const { where, limits } = this;
    const member = this.members.get(WEIGHTS);
    const bwhere = `${where}: member ${JSON.stringify(WEIGHTS)}`;
    if (member.method === 8 && member.size > limits.max_total_bytes) {
      throw new LimitError(`${bwhere} declares ${member.size} bytes, over the limit; raise limits.max_total_bytes`);
    }
    const bytes = member.method === 0 && !checkStoredCrc
      ? this.zip.bytes.subarray(member.dataOffset, member.dataOffset + member.size)
      : readMember(this.zip, member);
    const zip = readZip(bytes, bwhere, {
      kind: 'an npz weight bundle',
      maxMembers: limits.max_tensors,
      tooMany: (count) => new LimitError(`${bwhere}: holds ${count} members, over the limit of ${limits.max_tensors} tensors; raise limits.max_tensors`),
      maxRatio: limits.max_compression_ratio,
    });
    const tensors = new Map();
    let total = 0;
    for (const m of zip.members) {
      if (!m.name.endsWith('.npy') || m.name.includes('/') || [...m.name].length > 1028) {
        throw new FormatError(`${bwhere}: unexpected member ${JSON.stringify(m.name)}; a bundle holds only '<name>.npy' members`);
      }
      tensors.set(m.name.slice(0, -4), m);
      total += m.size;
    }
    if (total > limits.max_total_bytes) throw new LimitError(`${bwhere}: declares ${total} bytes of tensors, over the limit of ${limits.max_total_bytes}; raise limits.max_total_bytes`);
    const listed = new Set(this.manifest.weights.map((t) => t.name));
    for (const name of tensors.keys()) if (!listed.has(name)) throw new FormatError(`${bwhere}: holds tensor ${JSON.stringify(name)}, which the manifest does not list`);
    for (const name of listed) if (!tensors.has(name)) throw new FormatError(`${bwhere}: tensor ${JSON.stringify(name)} listed in the manifest is missing`);
    // §2.2 (1.5): a recorded offset is where the directory puts the tensor's member, so that a
    // reader taking one tensor by its offset finds what this reader of the directory finds.
    for (const { name, offset } of this.manifest.weights) {
      const start = tensors.get(name).headerOffset;
      if (offset !== null && offset !== BigInt(start)) {
        throw new FormatError(`${bwhere}: the manifest records offset ${offset} for tensor ${JSON.stringify(name)}, whose member starts at offset ${start}`);
      }
    }
    this.bundle = { zip, tensors };
    return this.bundle;
  }

  // One tensor: header checked against the manifest, CRC-32 always, SHA-256 on request.
  tensor(info, { checkSha256 = false } = {}) {
    const { zip, tensors } = this.openBundle();
    const member = tensors.get(info.name);
    const bytes = readMember(zip, member);
    const { dtype, shape, data } = readNpy(bytes, `${zip.where}: member ${JSON.stringify(member.name)}`, info);
    if (checkSha256 && info.sha256 !== null) {
      const actual = sha256(data);
      if (actual !== info.sha256) throw new IntegrityError(`${this.where}: tensor ${JSON.stringify(info.name)} is damaged: its SHA-256 is ${actual}, the manifest records ${info.sha256}`);
    }
    return { dtype, shape, bytes: data, array: fromBytes(dtype, shape, data) };
  }

  tensors(options = {}) {
    return new Map(this.manifest.weights.map((info) => [info.name, this.tensor(info, options)]));
  }

  // The tensors of the model (§3.1, §11): all of a model archive's; a checkpoint's without a ':'.
  modelWeights() {
    return this.manifest.weights.filter((t) => this.manifest.kind !== 'checkpoint' || !t.name.includes(':'));
  }

  // A model or checkpoint archive's callable model (§3): every tensor read and checked, ties
  // and references resolved.
  model(options = {}) {
    const { kind, architecture, ties } = this.manifest;
    if (kind === 'tensors') throw new SchemaError(`${this.where}: a tensor archive holds no model`);
    if (architecture === null) throw new FormatError(`${this.where}: a checkpoint of a custom Block has no architecture to rebuild`);
    if (kind === 'checkpoint') checkCheckpointTensors(this.manifest, this.where);
    const weights = this.modelWeights();
    const tensors = new Map(weights.map((info) => [info.name, this.tensor(info, options).array]));
    checkGraphReferences(architecture, this.where);
    checkTensorsFit(architecture, weights, this.where, ties);
    return buildModel(architecture, tensors, ties);
  }

  // Everything an archive records, as in modelpack's verify: throws the first problem.
  verify() {
    this.openBundle({ checkStoredCrc: true });
    const tensors = this.tensors({ checkSha256: true });
    if (this.manifest.kind === 'checkpoint') checkCheckpointTensors(this.manifest, this.where);
    if (this.manifest.architecture !== null) {
      checkGraphReferences(this.manifest.architecture, this.where);
      checkTensorsFit(this.manifest.architecture, this.modelWeights(), this.where, this.manifest.ties);
    }
    return tensors;
  }
}

// §11: every checkpoint tensor with a ':' has one of the three forms; a data order names a loader.
function checkCheckpointTensors(manifest, where) {
  const loaders = manifest.checkpoint.data.length;
  for (const { name } of manifest.weights) {
    const [part, ...more] = name.split(':');
    if (!more.length) continue;
    const rest = more.join(':');
    const data = part === 'data' ? /^([0-9]+):order$/.exec(rest) : null;
    if (data && Number(data[1]) >= loaders) {
      throw new FormatError(`${where}: tensor ${JSON.stringify(name)} names data loader ${data[1]}, but the checkpoint has ${loaders}`);
    }
    if (!((part === 'state') || (part === 'trainer' && rest.includes(':')) || data)) {
      throw new FormatError(`${where}: checkpoint tensor ${JSON.stringify(name)} is not 'trainer:<parameter>:<slot>', 'state:<key>' or 'data:<index>:order'`);
    }
  }
}
