// The error classes of spec/FORMAT.md §9. Each reader maps them one to one; here a class's
// `name` is exactly the spec's, so tests compare `error.name` with the conformance index.

export class ModelpackError extends Error {
  get name() { return this.constructor.name; }
}
export class FormatError extends ModelpackError {}
export class SchemaError extends FormatError {}
export class UnknownLayerError extends SchemaError {}
export class UnknownOpError extends SchemaError {}
export class VersionError extends FormatError {}
export class IntegrityError extends FormatError {}
export class LimitError extends FormatError {}
export class DtypeMismatchError extends ModelpackError {}
export class ShapeMismatchError extends ModelpackError {}
export class UnsupportedDtypeError extends ModelpackError {}
export class InputError extends ModelpackError {}
