"""``modelpack convert SRC… -o OUT``: other tools' files into one ``.mpk`` archive.

An ONNX model becomes a model archive; a torch file (``torch.save``) plus ``--architecture
ARCH.mpk`` becomes that architecture with its state_dict's weights, and alone a tensor archive
of every tensor and numpy array in it, named by their paths (``model.fc.weight``,
``optimizer.state.0.momentum_buffer``), its numbers and strings in the archive's metadata; a
safetensors file likewise: with ``--architecture`` its weights (torch's names mapped), alone a
tensor archive of its tensors, its ``__metadata__`` strings in the archive's metadata;
from MXNet, a Gluon export (``-symbol.json`` + ``-0000.params``) becomes a model archive, a
parameter file plus ``--architecture`` that architecture with those weights, and a lone NDArray
file (``npx.save``) a tensor archive (a list, or a dict when named). Which is which is read
from the files (``interop.convert``); the options stay the same for every format.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ..errors import UsageError
from .progress import progress

__all__ = ["add_parser", "parse_input_shape"]


def add_parser(commands: Any) -> None:
    """Register the subcommand on the CLI's subparsers."""
    convert = commands.add_parser(
        "convert", help="turn ONNX, PyTorch, safetensors or MXNet files into an .mpk",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    convert.add_argument("sources", nargs="+", metavar="SRC",
                         help="a .onnx model; a torch or safetensors file (alone: its tensors; with "
                              "--architecture: its state_dict's weights); -symbol.json and its "
                              "-0000.params, or one NDArray/parameter file")
    convert.add_argument("-o", "--output", required=True, metavar="OUT", help="the archive to write")
    convert.add_argument("--architecture", metavar="ARCH",
                         help="an .mpk whose weights the parameters replace")
    convert.add_argument("--input-shape", action="append", default=[], metavar="NAME=DIMS",
                         help="a graph input's shape, e.g. data=N,3,32,32 (N, None or -1: dynamic); "
                              "needed only when the converter cannot infer it")
    convert.add_argument("--ignore-extra", action="store_true", help="skip parameters the model does not use")
    convert.add_argument("--json", action="store_true", help="print what was written as JSON")
    convert.set_defaults(run=run)


def parse_input_shape(text: str) -> tuple[str, tuple[int | None, ...]]:
    """``data=N,3,32,32`` → ("data", (None, 3, 32, 32))."""
    name, sep, dims = text.partition("=")
    if not sep or not name:
        raise UsageError(f"--input-shape {text!r}: expected NAME=DIMS, e.g. data=N,3,32,32")
    shape: list[int | None] = []
    for dim in dims.split(","):
        dim = dim.strip()
        if dim in ("N", "None", "-1", "?", "batch"):
            shape.append(None)
        elif dim.isdigit():
            shape.append(int(dim))
        else:
            raise UsageError(f"--input-shape {text!r}: {dim!r} is not a size (an integer, or N for dynamic)")
    return name, tuple(shape)


def run(args: argparse.Namespace) -> int:
    from .. import api
    from ..interop.convert import CONVERTERS, convert, source_kind
    from ..interop.mxnet import ndarray
    from ..nn.block import Block

    shapes = dict(parse_input_shape(text) for text in args.input_shape)
    sources = [str(s) for s in args.sources]
    kinds = {source_kind(s) for s in sources}
    tool = CONVERTERS[next((kind for kind in ("onnx", "torch", "safetensors") if kind in kinds), "mxnet")]
    metadata = {"converted_from": ", ".join(os.path.basename(s) for s in sources),
                "converter": f"modelpack convert ({tool})"}
    with progress(f"converting {', '.join(sources)}"):
        report: dict[str, Any]
        if len(sources) == 1 and args.architecture is None and (
                kinds & {"torch", "safetensors"} or ndarray.is_ndarray_file(sources[0])):
            if shapes:
                raise UsageError("--input-shape applies to a Gluon export (-symbol.json), not to arrays")
            if args.ignore_extra:
                raise UsageError("--ignore-extra applies to weights loaded into an architecture (give "
                                 "--architecture); a file's tensors alone are all written")
            if kinds == {"torch"}:
                report = _torch_tensors(sources[0], args.output, metadata)
            elif kinds == {"safetensors"}:
                report = _safetensors_tensors(sources[0], args.output, metadata)
            else:
                tensors = ndarray.load(sources[0])
                api.save(args.output, tensors, metadata=metadata)
                report = {"kind": "tensors", "tensors": len(tensors)}
        else:
            net: Block = convert(*sources, architecture=args.architecture, input_shapes=shapes or None,
                                 ignore_extra=args.ignore_extra)
            api.export(net, args.output, metadata=metadata)
            params = net.collect_params()
            report = {"kind": "model", "type": type(net).__name__,
                      "layers": len(list(net.named_blocks())) - 1, "tensors": len(params),
                      "parameters": sum(int(p.array().size) for p in params.values())}
    report = {"output": str(args.output), "sources": sources, **report}
    if args.json:
        print(json.dumps(report, indent=2))
    elif report["kind"] == "model":
        print(f"wrote {report['output']}: a {report['type']} model, {report['layers']} layers, "
              f"{report['parameters']:,} parameters")
    else:
        counts = [f"{report['tensors']} tensors"] + [
            f"{report[key]} {what}" for key, what in _TORCH_COUNTS.items() if key in report]
        print(f"wrote {report['output']}: {', '.join(counts)}")
    return 0


# what a torch file's tensor archive reports besides its tensors
_TORCH_COUNTS = {"values": "values in its metadata",
                 "skipped": "values skipped (neither arrays, numbers nor text)"}


def _torch_tensors(source: str, output: str, metadata: dict[str, str]) -> dict[str, Any]:
    """A torch file without an architecture: every array in it by its dotted path (a lone one
    as it is), its numbers and strings as text in the metadata beside the converter's own."""
    import numpy as np

    from .. import api
    from ..interop.torch import flatten, load

    loaded = load(source)
    flat = flatten(loaded, where=source)
    values = {name: str(value) for name, value in flat.values.items() if name not in metadata}
    tensors = loaded if isinstance(loaded, np.ndarray) else flat.arrays
    api.save(output, tensors, metadata={**values, **metadata})
    return {"kind": "tensors", "tensors": len(flat.arrays), "values": len(values),
            "skipped": flat.skipped + len(flat.values) - len(values)}


def _safetensors_tensors(source: str, output: str, metadata: dict[str, str]) -> dict[str, Any]:
    """A safetensors file without an architecture: its tensors as they are named, its
    ``__metadata__`` strings in the archive's metadata beside the converter's own (which win)."""
    from .. import api
    from ..interop.safetensors import read_safetensors

    tensors, strings = read_safetensors(source)
    values = {name: value for name, value in strings.items() if name not in metadata}
    api.save(output, tensors, metadata={**values, **metadata})
    return {"kind": "tensors", "tensors": len(tensors), "values": len(values)}
