// .npy members, spec/FORMAT.md §4: the header grammar, the dtype table, the checks against
// the manifest, and the bytes as a typed array.
import { DtypeMismatchError, FormatError, ShapeMismatchError, UnsupportedDtypeError } from './errors.js';

// dtype -> [descr, item size]
export const DTYPES = {
  bool: ['|b1', 1], int8: ['|i1', 1], int16: ['<i2', 2], int32: ['<i4', 4], int64: ['<i8', 8],
  uint8: ['|u1', 1], uint16: ['<u2', 2], uint32: ['<u4', 4], uint64: ['<u8', 8],
  float16: ['<f2', 2], float32: ['<f4', 4], float64: ['<f8', 8], complex64: ['<c8', 8], complex128: ['<c16', 16],
};
const BY_DESCR = new Map();
for (const [name, [descr]] of Object.entries(DTYPES)) {
  BY_DESCR.set(descr, name);
  if (descr[0] === '<') BY_DESCR.set('>' + descr.slice(1), name); // refused later, as a byte-order mismatch
}
const MAX_HEADER = 10000, MAX_DIMS = 64;

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('this reader assumes a little-endian machine');

// The header grammar of §4; returns {descr, fortran, shape: BigInt[]} or throws FormatError.
export function parseHeader(text, where) {
  const bad = (what) => {
    // NumPy writes a structured dtype's descr as a list: a dtype outside the table (§4).
    if (/['"]descr['"] *: *\[/.test(text)) throw new UnsupportedDtypeError(`${where} has a structured dtype, which is not in the format's table`);
    throw new FormatError(`${where}: malformed .npy header (${what})`);
  };
  if (!/^[\x20-\x7e\n]*$/.test(text) || !text.endsWith('\n')) bad('not ASCII ending in a newline');
  let i = 0;
  const ws = () => { while (text[i] === ' ') i++; };
  const expect = (c) => { if (text[i] !== c) bad(`'${c}' expected at ${i}`); i++; };
  const quoted = () => {
    const q = text[i];
    if (q !== "'" && q !== '"') bad(`a string expected at ${i}`);
    const end = text.indexOf(q, i + 1);
    if (end < 0) bad('an unterminated string');
    const body = text.slice(i + 1, end);
    if (/[\\\n]/.test(body)) bad('a backslash or newline in a string');
    i = end + 1;
    return body;
  };
  const int = () => {
    const m = /^-?(0|[1-9][0-9]*)/.exec(text.slice(i));
    if (!m) bad(`an integer expected at ${i}`);
    i += m[0].length;
    return BigInt(m[0]);
  };
  const shape = () => {
    expect('(');
    ws();
    const dims = [];
    if (text[i] === ')') { i++; return dims; }
    dims.push(int());
    ws();
    expect(',');
    ws();
    if (text[i] === ')') { i++; return dims; }
    dims.push(int());
    for (;;) {
      ws();
      if (text[i] === ')') { i++; return dims; }
      expect(',');
      ws();
      if (text[i] === ')') { i++; return dims; }
      dims.push(int());
    }
  };
  const entries = {};
  expect('{');
  for (let n = 0; n < 3; n++) {
    ws();
    if (n > 0) { expect(','); ws(); }
    const key = quoted();
    if (!['descr', 'fortran_order', 'shape'].includes(key) || key in entries) bad(`the key ${JSON.stringify(key)}`);
    ws();
    expect(':');
    ws();
    if (key === 'descr') entries.descr = quoted();
    else if (key === 'shape') entries.shape = shape();
    else if (text.startsWith('True', i)) { entries.fortran_order = true; i += 4; }
    else if (text.startsWith('False', i)) { entries.fortran_order = false; i += 5; }
    else bad('fortran_order is not True or False');
  }
  ws();
  if (text[i] === ',') { i++; ws(); }
  expect('}');
  if (!/^ *\n$/.test(text.slice(i))) bad('text after the dict');
  return { descr: entries.descr, fortran: entries.fortran_order, shape: entries.shape };
}

// Check a member's bytes against the manifest's TensorInfo; returns the data bytes.
export function readNpy(member, where, info) {
  const prefix = member.subarray(0, 8);
  if (member.length < 8 || !(prefix[0] === 0x93 && new TextDecoder().decode(prefix.subarray(1, 6)) === 'NUMPY')) {
    throw new FormatError(`${where} is not a .npy array (no NUMPY magic)`);
  }
  const version = `${prefix[6]}.${prefix[7]}`;
  const width = { '1.0': 2, '2.0': 4 }[version];
  if (!width) throw new FormatError(`${where}: unsupported .npy format version ${version}`);
  if (member.length < 8 + width) throw new FormatError(`${where}: the .npy header length is cut short`);
  const dv = new DataView(member.buffer, member.byteOffset, member.byteLength);
  const length = width === 2 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = 8 + width;
  if (length > MAX_HEADER || start + length > member.length) {
    throw new FormatError(`${where}: .npy header length ${length} is over ${MAX_HEADER} bytes or beyond the member`);
  }
  const header = parseHeader(String.fromCharCode(...member.subarray(start, start + length)), where);
  const dtype = BY_DESCR.get(header.descr);
  if (dtype === undefined) throw new UnsupportedDtypeError(`${where} has dtype ${JSON.stringify(header.descr)}, which is not in the format's table`);
  if (header.shape.length > MAX_DIMS || header.shape.some((d) => d < 0n)) {
    throw new FormatError(`${where}: shape (${header.shape.join(', ')}) has negative dimensions or more than ${MAX_DIMS}`);
  }
  const itemsize = BigInt(DTYPES[dtype][1]);
  if (header.shape.reduce((a, d) => (d ? a * d : a), 1n) * itemsize >= 2n ** 63n) {
    throw new FormatError(`${where}: shape (${header.shape.join(', ')}) overflows any array size`);
  }
  if (dtype !== info.dtype) throw new DtypeMismatchError(`${where}: the manifest says dtype ${info.dtype}, the array header says ${dtype}`);
  if (header.descr !== DTYPES[dtype][0]) throw new DtypeMismatchError(`${where}: the header's byte order ${header.descr} is not little-endian`);
  const shape = header.shape.map(Number);
  if (shape.length !== info.shape.length || shape.some((d, k) => BigInt(d) !== BigInt(info.shape[k]))) {
    throw new ShapeMismatchError(`${where}: the manifest says shape (${info.shape.join(', ')}), the array header says (${shape.join(', ')})`);
  }
  if (header.fortran) throw new FormatError(`${where}: the array header says Fortran order; archive tensors are C order`);
  const expected = header.shape.reduce((a, d) => a * d, 1n) * itemsize;
  const actual = BigInt(member.length - start - length);
  if (expected !== actual) {
    throw new FormatError(`${where} ${expected > actual ? 'is truncated' : 'has bytes after its data'}: the header says ${expected} bytes, the member holds ${actual}`);
  }
  return { dtype, shape, data: member.subarray(start + length) };
}

// A stand-alone .npy (the conformance index's expected values): parsed with the same grammar.
export function loadNpy(bytes, where) {
  const width = bytes[6] === 1 ? 2 : 4;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = width === 2 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const header = parseHeader(String.fromCharCode(...bytes.subarray(8 + width, 8 + width + length)), where);
  const dtype = BY_DESCR.get(header.descr);
  if (dtype === undefined || header.descr[0] === '>' || header.fortran) throw new Error(`${where}: unexpected expected-value file`);
  return { dtype, shape: header.shape.map(Number), data: bytes.subarray(8 + width + length) };
}
