// The manifest's text, spec/FORMAT.md §2.1: the JSON form (parsed here) or the block form
// (YAML syntax from the `yaml` package; what a plain scalar means is decided by the spec's
// table, never by the library). Values: Map (key order kept), Array, string, boolean, null,
// BigInt (an integer token) and number (a float token).
import YAML from 'yaml';
import { LimitError, SchemaError } from './errors.js';

export const MAX_DEPTH = 160;
const INT_MIN = -(2n ** 63n), INT_END = 2n ** 63n;
const MAX_NUMBER = 400;

export function parseManifestText(raw, where, maxNodes) {
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
  } catch {
    throw new SchemaError(`${where} is not UTF-8`);
  }
  const first = text.match(/[^ \t\r\n]/);
  const counter = { nodes: 0, maxNodes, where };
  const value = first && first[0] === '{' ? parseJson(text, counter) : parseBlock(text, counter);
  if (!(value instanceof Map)) throw new SchemaError(`${where}: the manifest must be a mapping`);
  return value;
}

function count(counter) {
  counter.nodes += 1;
  if (counter.nodes > counter.maxNodes) {
    throw new LimitError(`${counter.where}: the manifest has more than ${counter.maxNodes} nodes (limit max_manifest_nodes)`);
  }
}

export function integerToken(token, where) {
  if (token.length > MAX_NUMBER) throw new SchemaError(`${where}: a number of ${token.length} characters`);
  const value = BigInt(token);
  if (value < INT_MIN || value >= INT_END) throw new SchemaError(`${where}: the integer ${token} is outside [-2**63, 2**63)`);
  return value;
}

function floatToken(token, where) {
  if (token.length > MAX_NUMBER) throw new SchemaError(`${where}: a number of ${token.length} characters`);
  return Number(token);
}

// -- the JSON form ---------------------------------------------------------------------------

const JSON_INT = /^-?(0|[1-9][0-9]*)$/;
const JSON_FLOAT = /^-?(0|[1-9][0-9]*)\.[0-9]+([eE][-+][0-9]+)?$/;

function parseJson(text, counter) {
  const where = counter.where;
  if (/[\u0085\u2028\u2029\ufeff]/.test(text)) throw new SchemaError(`${where}: the JSON form holds a raw U+0085, U+2028, U+2029 or U+FEFF`);
  let i = 0;
  const fail = (what) => { throw new SchemaError(`${where}: not valid JSON at character ${i}: ${what}`); };
  const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++; };
  const string = () => {
    i++; // opening quote
    let out = '';
    for (;;) {
      if (i >= text.length) fail('an unterminated string');
      const c = text[i];
      if (c === '"') { i++; return out; }
      if (c < ' ') fail('a raw control character in a string');
      if (c !== '\\') { out += c; i++; continue; }
      const e = text[i + 1];
      const simple = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e in simple) { out += simple[e]; i += 2; continue; }
      if (e !== 'u' || !/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail('a bad escape');
      const code = parseInt(text.slice(i + 2, i + 6), 16);
      if (code >= 0xd800 && code <= 0xdfff) fail('a UTF-16 surrogate escape');
      out += String.fromCharCode(code);
      i += 6;
    }
  };
  const number = () => {
    const match = /^-?[0-9][0-9.eE+-]*/.exec(text.slice(i, i + MAX_NUMBER + 2)) || fail('a bad value');
    const token = match[0];
    i += token.length;
    if (JSON_INT.test(token)) return integerToken(token, where);
    if (JSON_FLOAT.test(token)) return floatToken(token, where);
    return fail(`the number ${token} (the JSON form writes integers, or floats with a fraction and a signed exponent)`);
  };
  const value = (depth) => {
    ws();
    const c = text[i];
    count(counter);
    if (c === '{' || c === '[') {
      if (depth > MAX_DEPTH) throw new SchemaError(`${where}: the manifest nests deeper than ${MAX_DEPTH} levels`);
      i++;
      ws();
      const isMap = c === '{';
      const out = isMap ? new Map() : [];
      if (text[i] === (isMap ? '}' : ']')) { i++; return out; }
      for (;;) {
        if (isMap) {
          ws();
          if (text[i] !== '"') fail('a key must be a string');
          count(counter);
          const key = string();
          ws();
          if (text[i] !== ':') fail("':' expected");
          i++;
          const item = value(depth + 1);
          if (out.has(key)) fail(`the key ${JSON.stringify(key)} twice`);
          out.set(key, item);
        } else {
          out.push(value(depth + 1));
        }
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === (isMap ? '}' : ']')) { i++; return out; }
        fail(`',' or '${isMap ? '}' : ']'}' expected`);
      }
    }
    if (c === '"') return string();
    if (text.startsWith('true', i)) { i += 4; return true; }
    if (text.startsWith('false', i)) { i += 5; return false; }
    if (text.startsWith('null', i)) { i += 4; return null; }
    if (c === '-' || (c >= '0' && c <= '9')) return number();
    return fail('a bad value');
  };
  const root = value(1);
  ws();
  if (i !== text.length) fail('text after the value');
  return root;
}

// -- the block form --------------------------------------------------------------------------

const PRINTABLE = /^[\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]*$/u;

// The §2.1 table: a plain scalar's value, by the first row that matches it whole.
const NULL = /^(~|null|Null|NULL|)$/;
const TRUE = /^(true|True|TRUE)$/, FALSE = /^(false|False|FALSE)$/;
const INT = /^[-+]?(0|[1-9][0-9]*)$/;
const FLOAT = /^([-+]?[0-9]+\.[0-9]*([eE][-+][0-9]+)?|\.[0-9]+([eE][-+][0-9]+)?)$/;
const INF = /^[-+]?\.(inf|Inf|INF)$/, NAN = /^\.(nan|NaN|NAN)$/;
const REFUSED = [
  /^(yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)$/,
  /^[-+]?0b[0-1_]+$/, /^[-+]?0[0-7_]+$/, /^[-+]?(0|[1-9][0-9_]*)$/, /^[-+]?0x[0-9a-fA-F_]+$/,
  /^[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+$/,
  /^[-+]?[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?$/, /^\.[0-9][0-9_]*([eE][-+][0-9]+)?$/,
  /^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*$/,
  /^[0-9]{4}-[0-9]{2}-[0-9]{2}$/,
  /^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(\.[0-9]*)?([ \t]*(Z|[-+][0-9]{1,2}(:[0-9]{2})?))?$/,
  /^<<$/, /^=$/,
];

export function resolvePlain(text, where) {
  if (NULL.test(text)) return null;
  if (TRUE.test(text)) return true;
  if (FALSE.test(text)) return false;
  if (INT.test(text)) return integerToken(text, where);
  if (FLOAT.test(text)) return floatToken(text, where);
  if (INF.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  if (NAN.test(text)) return NaN;
  if (REFUSED.some((pattern) => pattern.test(text))) {
    throw new SchemaError(`${where}: the plain scalar ${JSON.stringify(text.slice(0, 40))} is a YAML 1.1 form a manifest may not hold; quote it`);
  }
  return text;
}

function parseBlock(text, counter) {
  const where = counter.where;
  if (text.includes('\ufeff')) throw new SchemaError(`${where}: a raw U+FEFF (byte-order mark)`);
  if (!PRINTABLE.test(text)) throw new SchemaError(`${where}: a character YAML does not allow (not printable)`);
  let documents;
  try {
    documents = YAML.parseAllDocuments(text, { version: '1.1', schema: 'failsafe', merge: false, uniqueKeys: false, strict: true, prettyErrors: false });
  } catch (error) {
    throw new SchemaError(`${where}: not valid YAML (${error.message})`);
  }
  if (!Array.isArray(documents)) documents = [documents];
  if (documents.length !== 1) throw new SchemaError(`${where}: a manifest is exactly one YAML document, found ${documents.length}`);
  const doc = documents[0];
  if (doc.errors.length) throw new SchemaError(`${where}: not valid YAML (${doc.errors[0].message})`);
  const tags = doc.directives.tags;
  if (doc.directives.yaml.explicit || Object.keys(tags).some((k) => k !== '!!' && k !== '!') || tags['!!'] !== 'tag:yaml.org,2002:') {
    throw new SchemaError(`${where}: YAML directives are not allowed in a manifest`);
  }
  return convert(doc.contents, where, counter);
}

function convert(root, where, counter) {
  // Iterative walk: [node, depth, attach(value)].
  let result;
  const stack = [[root, 1, (v) => { result = v; }]];
  while (stack.length) {
    const [node, depth, attach] = stack.pop();
    if (node === null || node === undefined) { count(counter); attach(null); continue; }
    if (YAML.isAlias(node)) throw new SchemaError(`${where}: YAML aliases are not allowed in a manifest`);
    if (node.anchor) throw new SchemaError(`${where}: YAML anchors are not allowed in a manifest`);
    if (node.tag) throw new SchemaError(`${where}: the YAML tag ${JSON.stringify(node.tag)} is not allowed in a manifest`);
    count(counter);
    if (YAML.isScalar(node)) {
      attach(node.type === 'PLAIN' ? resolvePlain(String(node.value ?? ''), where) : String(node.value));
      continue;
    }
    if (depth > MAX_DEPTH) throw new SchemaError(`${where}: the manifest nests deeper than ${MAX_DEPTH} levels`);
    if (YAML.isSeq(node)) {
      const list = new Array(node.items.length);
      attach(list);
      node.items.forEach((item, k) => stack.push([item, depth + 1, (v) => { list[k] = v; }]));
      continue;
    }
    if (YAML.isMap(node)) {
      const map = new Map();
      const values = new Array(node.items.length);
      const keys = [];
      for (const pair of node.items) {
        const key = pair.key;
        if (!YAML.isScalar(key) || key.anchor || key.tag) throw new SchemaError(`${where}: mapping keys must be plain strings`);
        count(counter);
        const name = key.type === 'PLAIN' ? resolvePlain(String(key.value ?? ''), where) : String(key.value);
        if (typeof name !== 'string') throw new SchemaError(`${where}: mapping keys must be strings, found ${String(name)}`);
        if (keys.includes(name)) throw new SchemaError(`${where}: duplicate key ${JSON.stringify(name)}`);
        keys.push(name);
      }
      // Fill in document order once every value is built (values are attached later).
      keys.forEach((k) => map.set(k, undefined));
      attach(map);
      node.items.forEach((pair, k) => stack.push([pair.value, depth + 1, (v) => { values[k] = v; map.set(keys[k], v); }]));
      continue;
    }
    throw new SchemaError(`${where}: an unsupported YAML node`);
  }
  return result;
}
