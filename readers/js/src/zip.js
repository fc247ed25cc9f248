// The strict zip reader of spec/FORMAT.md §1.1 and §1.2: the end records, the central
// directory and every local header are vetted before any member data is used.
import zlib from 'node:zlib';
import { FormatError, IntegrityError, LimitError } from './errors.js';
import { crc32 } from './checksum.js';

const EOCD = 0x06054b50, LOCATOR = 0x07064b50, EOCD64 = 0x06064b50;
const CENTRAL = 0x02014b50, LOCAL = 0x04034b50;
const U32 = 0xffffffff;
const ENCRYPTION = 0x1 | 0x40 | 0x2000;
const DESCRIPTOR_SIZES = [12, 16, 20, 24];
export const GRACE = 1024 * 1024; // §8: deflated members up to 1 MiB are not ratio-checked

// Code page 437, bytes 0x80-0xFF (APPNOTE appendix D).
const CP437_HIGH =
  'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀' +
  'αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0';

class View {
  constructor(bytes, where) {
    this.bytes = bytes;
    this.where = where;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(offset, count) {
    if (offset < 0 || count < 0 || offset + count > this.bytes.length) {
      throw new FormatError(`${this.where} is truncated: ${count} bytes at offset ${offset} lie outside its ${this.bytes.length} bytes`);
    }
  }
  u16(o) { this.need(o, 2); return this.dv.getUint16(o, true); }
  u32(o) { this.need(o, 4); return this.dv.getUint32(o, true); }
  u64(o) {
    this.need(o, 8);
    const value = this.dv.getBigUint64(o, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`${this.where}: a 64-bit zip field of ${value} is beyond any file`);
    return Number(value);
  }
  slice(o, n) { this.need(o, n); return this.bytes.subarray(o, o + n); }
}

export function decodeName(raw, flags, where) {
  if (flags & 0x800) {
    try {
      return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
    } catch {
      throw new FormatError(`${where}: member name ${JSON.stringify(Array.from(raw))} is not valid UTF-8`);
    }
  }
  let text = '';
  for (const b of raw) text += b < 0x80 ? String.fromCharCode(b) : CP437_HIGH[b - 0x80];
  return text;
}

export function checkName(name, where) {
  let problem = null;
  if (name.length === 0) problem = 'is empty';
  else if (name.includes('\0')) problem = 'contains a NUL byte';
  else if (name.includes('\\')) problem = 'contains a backslash';
  else if (/^(\/|[A-Za-z]:[/\\])/.test(name)) problem = 'is an absolute path';
  else if (name.split('/').includes('..')) problem = "contains a '..' component";
  else if (name.endsWith('/')) problem = 'is a directory';
  else if (/[\x00-\x1f\x7f]/.test(name)) problem = 'contains control characters';
  if (problem) throw new FormatError(`${where}: member name ${JSON.stringify(name)} ${problem}`);
}

function endRecords(v, kind) {
  const size = v.bytes.length;
  if (size < 22) throw new FormatError(`${v.where}: not ${kind} (not a zip file: only ${size} bytes)`);
  const lowest = Math.max(0, size - 22 - 0xffff);
  let position = -1;
  for (let p = size - 22; p >= lowest; p--) {
    if (v.u32(p) === EOCD && p + 22 + v.u16(p + 20) === size) { position = p; break; }
  }
  if (position < 0) {
    throw new FormatError(`${v.where}: not ${kind}, or truncated, or with bytes after its end: no end-of-directory record ends the file`);
  }
  const disk = v.u16(position + 4), directoryDisk = v.u16(position + 6);
  const diskEntries = v.u16(position + 8), entries = v.u16(position + 10);
  const directorySize = v.u32(position + 12), directoryOffset = v.u32(position + 16);
  const comment = v.slice(position + 22, v.u16(position + 20));
  if (disk !== 0 || directoryDisk !== 0 || diskEntries !== entries) {
    throw new FormatError(`${v.where}: multi-disk (split) zip archives are not supported`);
  }
  const locator = position - 20;
  if (locator >= 0 && v.u32(locator) === LOCATOR) {
    const locatorDisk = v.u32(locator + 4), record = v.u64(locator + 8), disks = v.u32(locator + 16);
    if (locatorDisk !== 0 || disks !== 1) throw new FormatError(`${v.where}: multi-disk (split) zip archives are not supported`);
    if (record + 56 > locator) throw new FormatError(`${v.where}: the zip64 end record is not where its locator says`);
    if (v.u32(record) !== EOCD64 || record + 12 + v.u64(record + 4) !== locator) {
      throw new FormatError(`${v.where}: the zip64 end record is damaged or not where its locator says`);
    }
    const disk64 = v.u32(record + 16), directoryDisk64 = v.u32(record + 20);
    const diskEntries64 = v.u64(record + 24), entries64 = v.u64(record + 32);
    const size64 = v.u64(record + 40), offset64 = v.u64(record + 48);
    if (disk64 !== 0 || directoryDisk64 !== 0 || diskEntries64 !== entries64) {
      throw new FormatError(`${v.where}: multi-disk (split) zip archives are not supported`);
    }
    for (const [value, short, saturated] of [[entries64, entries, 0xffff], [size64, directorySize, U32], [offset64, directoryOffset, U32]]) {
      if (short !== value && short !== saturated) throw new FormatError(`${v.where}: the zip end record and zip64 end record disagree`);
    }
    return { count: entries64, directoryOffset: offset64, directorySize: size64, directoryEnd: record, comment };
  }
  return { count: entries, directoryOffset, directorySize, directoryEnd: position, comment };
}

function zip64Values(extra, values, where, name) {
  // values: [size, csize, offset, disk]; saturated ones are replaced in APPNOTE order.
  const wanted = [values[0] === U32, values[1] === U32, values[2] === U32, values[3] === 0xffff];
  if (!wanted.some(Boolean)) return values;
  const dv = new DataView(extra.buffer, extra.byteOffset, extra.byteLength);
  let p = 0;
  while (p + 4 <= extra.length) {
    const id = dv.getUint16(p, true), length = dv.getUint16(p + 2, true);
    const bodyStart = p + 4, bodyEnd = Math.min(extra.length, p + 4 + length);
    p += 4 + length;
    if (id !== 1) continue;
    const out = values.slice();
    let cursor = bodyStart;
    for (let i = 0; i < 4; i++) {
      if (!wanted[i]) continue;
      const width = i === 3 ? 4 : 8;
      if (cursor + width > bodyEnd) throw new FormatError(`${where}: member ${JSON.stringify(name)} lacks the zip64 sizes its header announces`);
      out[i] = width === 4 ? dv.getUint32(cursor, true) : Number(dv.getBigUint64(cursor, true));
      cursor += width;
    }
    return out;
  }
  throw new FormatError(`${where}: member ${JSON.stringify(name)} lacks the zip64 sizes its header announces`);
}

function checkFileType(name, madeBy, external, where) {
  const host = madeBy >> 8;
  const type = (external >>> 16) & 0o170000;
  if ((host === 3 || host === 19) && type !== 0 && type !== 0o100000) {
    throw new FormatError(`${where}: member ${JSON.stringify(name)} is not a regular file (mode ${(external >>> 16).toString(8)})`);
  }
  if (external & 0x10) throw new FormatError(`${where}: member ${JSON.stringify(name)} is a directory`);
}

function centralEntries(v, start, size, count) {
  const members = [];
  const seen = new Set();
  let p = start;
  const end = start + size;
  for (let index = 0; index < count; index++) {
    if (p + 46 > end) throw new FormatError(`${v.where}: the zip directory ends after ${index} of its ${count} entries`);
    if (v.u32(p) !== CENTRAL) throw new FormatError(`${v.where}: zip directory entry ${index} is damaged (bad signature)`);
    const madeBy = v.u16(p + 4), flags = v.u16(p + 8), method = v.u16(p + 10), crc = v.u32(p + 16);
    let csize = v.u32(p + 20), usize = v.u32(p + 24);
    const nameLength = v.u16(p + 28), extraLength = v.u16(p + 30), commentLength = v.u16(p + 32);
    let disk = v.u16(p + 34);
    const external = v.u32(p + 38);
    let offset = v.u32(p + 42);
    const next = p + 46 + nameLength + extraLength + commentLength;
    if (next > end) throw new FormatError(`${v.where}: zip directory entry ${index} runs past the directory`);
    const name = decodeName(v.slice(p + 46, nameLength), flags, v.where);
    checkName(name, v.where);
    if (seen.has(name)) throw new FormatError(`${v.where}: duplicate member ${JSON.stringify(name)}`);
    seen.add(name);
    [usize, csize, offset, disk] = zip64Values(v.slice(p + 46 + nameLength, extraLength), [usize, csize, offset, disk], v.where, name);
    if (disk !== 0) throw new FormatError(`${v.where}: member ${JSON.stringify(name)} lies on another disk`);
    if (flags & ENCRYPTION) throw new FormatError(`${v.where}: member ${JSON.stringify(name)} is encrypted`);
    if (method !== 0 && method !== 8) throw new FormatError(`${v.where}: member ${JSON.stringify(name)} uses compression method ${method}`);
    if (method === 0 && csize !== usize) throw new FormatError(`${v.where}: member ${JSON.stringify(name)} is stored but declares ${usize} bytes in ${csize}`);
    checkFileType(name, madeBy, external, v.where);
    members.push({ name, flags, method, crc, csize, size: usize, headerOffset: offset, dataOffset: -1 });
    p = next;
  }
  if (p !== end) throw new FormatError(`${v.where}: the zip directory holds ${end - p} bytes beyond its ${count} entries`);
  return members;
}

function checkGap(offset, expected, previous, v, what) {
  const gap = offset - expected;
  if (gap === 0) return;
  if (previous && previous.flags & 0x8 && DESCRIPTOR_SIZES.includes(gap)) return;
  if (!previous) throw new FormatError(`${v.where}: ${gap} bytes of unexpected data before the first member`);
  if (gap < 0) throw new FormatError(`${v.where}: member ${JSON.stringify(previous.name)} overlaps ${what} by ${-gap} bytes`);
  throw new FormatError(`${v.where}: ${gap} unexpected bytes between member ${JSON.stringify(previous.name)} and ${what}`);
}

function locate(v, members, directoryOffset) {
  const order = members.map((m, i) => i).sort((a, b) => members[a].headerOffset - members[b].headerOffset);
  let expected = 0;
  let previous = null;
  for (const i of order) {
    const m = members[i];
    if (m.headerOffset + 30 > directoryOffset) {
      throw new FormatError(`${v.where}: member ${JSON.stringify(m.name)} starts at offset ${m.headerOffset}, past the member data`);
    }
    checkGap(m.headerOffset, expected, previous, v, 'the next member');
    const h = m.headerOffset;
    if (v.u32(h) !== LOCAL) throw new FormatError(`${v.where}: member ${JSON.stringify(m.name)} has no local header at offset ${h}`);
    const flags = v.u16(h + 6), method = v.u16(h + 8);
    let crc = v.u32(h + 14), csize = v.u32(h + 18), usize = v.u32(h + 22);
    const nameLength = v.u16(h + 26), extraLength = v.u16(h + 28);
    const localName = decodeName(v.slice(h + 30, nameLength), flags, v.where);
    if (localName !== m.name) throw new FormatError(`${v.where}: member ${JSON.stringify(m.name)} is called ${JSON.stringify(localName)} in its local header`);
    if (flags & 0x8) {
      [crc, csize, usize] = [m.crc, m.csize, m.size];
    } else {
      [usize, csize] = zip64Values(v.slice(h + 30 + nameLength, extraLength), [usize, csize, 0, 0], v.where, m.name);
    }
    if (method !== m.method || (flags & ENCRYPTION) !== (m.flags & ENCRYPTION) || crc !== m.crc || csize !== m.csize || usize !== m.size) {
      throw new FormatError(`${v.where}: member ${JSON.stringify(m.name)}: its local header disagrees with the zip directory`);
    }
    m.dataOffset = h + 30 + nameLength + extraLength;
    v.need(m.dataOffset, m.csize);
    expected = m.dataOffset + m.csize;
    previous = m;
  }
  checkGap(directoryOffset, expected, previous, v, 'the zip directory');
}

// A vetted zip: `members` in directory order, each {name, method, crc, csize, size, dataOffset}.
export function readZip(bytes, where, { kind, maxMembers, tooMany, maxRatio, ratioHint = '' }) {
  const v = new View(bytes, where);
  const end = endRecords(v, kind);
  if (end.count > maxMembers) throw tooMany(end.count);
  if (end.directoryOffset + end.directorySize !== end.directoryEnd) {
    throw new FormatError(`${where}: the zip directory is not where the end record says (${end.directoryEnd - end.directoryOffset - end.directorySize} bytes)`);
  }
  if (end.directorySize < 46 * end.count || end.directorySize > end.count * (46 + 3 * 0xffff)) {
    throw new FormatError(`${where}: a zip directory of ${end.directorySize} bytes cannot hold exactly ${end.count} entries`);
  }
  const members = centralEntries(v, end.directoryOffset, end.directorySize, end.count);
  for (const m of members) {
    if (m.method === 8 && m.size > GRACE && m.size > maxRatio * m.csize) {
      throw new LimitError(`${where}: member ${JSON.stringify(m.name)} declares ${m.size} bytes from ${m.csize} compressed (over the ratio limit of ${maxRatio})${ratioHint}`);
    }
  }
  locate(v, members, end.directoryOffset);
  return { members, comment: end.comment, bytes, where };
}

// A member's uncompressed bytes, inflated if needed, its CRC-32 checked (§7.2).
export function readMember(zip, member, { checkCrc = true } = {}) {
  const where = `${zip.where}: member ${JSON.stringify(member.name)}`;
  const stored = zip.bytes.subarray(member.dataOffset, member.dataOffset + member.csize);
  let data = stored;
  if (member.method === 8) {
    let result;
    try {
      result = zlib.inflateRawSync(stored, { info: true, maxOutputLength: Math.max(1, member.size + 1) });
    } catch (error) {
      if (error.code === 'ERR_BUFFER_TOO_LARGE') throw new FormatError(`${where} decompresses to more than its declared ${member.size} bytes`);
      if (error.code === 'Z_BUF_ERROR') throw new FormatError(`${where} is truncated: its deflate stream ends early`);
      throw new FormatError(`${where}: deflate data is corrupt (${error.message})`);
    }
    data = result.buffer;
    if (data.length > member.size) throw new FormatError(`${where} decompresses to more than its declared ${member.size} bytes`);
    if (data.length < member.size) throw new FormatError(`${where} is truncated: its deflate stream ends early`);
    if (result.engine.bytesWritten !== stored.length) throw new FormatError(`${where}: bytes follow the end of its deflate stream`);
  }
  if (checkCrc) {
    const crc = crc32(data);
    if (crc !== member.crc) {
      throw new IntegrityError(`${where} is damaged: CRC-32 is ${crc.toString(16).padStart(8, '0')}, the zip directory records ${member.crc.toString(16).padStart(8, '0')}`);
    }
  }
  return data;
}
