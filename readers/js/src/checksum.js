// CRC-32 (zip's) and SHA-256. node:zlib has crc32 from Node 20.15; older Nodes get a table.
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';

let table = null;
function crc32Table(bytes, crc = 0) {
  if (table === null) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = table[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

export const crc32 = typeof zlib.crc32 === 'function' ? (bytes) => zlib.crc32(bytes) >>> 0 : crc32Table;

export function sha256(bytes) {
  return createHash('sha256').update(bytes).digest('hex');
}
