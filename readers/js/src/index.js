// A second reader of the modelpack format, written from spec/FORMAT.md alone.
//   import { open } from './src/index.js';
//   const archive = open(fs.readFileSync('mlp.mpk'), 'mlp.mpk');   // refuses as §1.1-§8 say
//   const y = archive.model()(x);                                   // x, y: NDArray
export { openArchive as open, DEFAULT_LIMITS } from './archive.js';
export { NDArray, fromBytes } from './ndarray.js';
export { loadNpy } from './npy.js';
export * from './errors.js';
