"""``modelpack convert SRC… -o OUT``: other tools' files into one ``.mpk`` archive.

An ONNX model becomes a model archive; a torch state_dict file (``torch.save``) plus
``--architecture ARCH.mpk`` becomes that architecture with those weights; from MXNet, a Gluon
export (``-symbol.json`` + ``-0000.params``) becomes a model archive, a parameter file plus
``--architecture`` that architecture with those weights, and a lone NDArray file (``npx.save``)
a tensor archive (a list, or a dict when named). Which is which is read from the files
(``interop.convert``); the options stay the same for every format.
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
        "convert", help="turn ONNX, PyTorch or MXNet files into an .mpk",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    convert.add_argument("sources", nargs="+", metavar="SRC",
                         help="a .onnx model; a torch state_dict (with --architecture); -symbol.json and "
                              "its -0000.params, or one NDArray/parameter file")
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
    tool = CONVERTERS["onnx" if "onnx" in kinds else "torch" if "torch" in kinds else "mxnet"]
    metadata = {"converted_from": ", ".join(os.path.basename(s) for s in sources),
                "converter": f"modelpack convert ({tool})"}
    with progress(f"converting {', '.join(sources)}"):
        arrays = [s for s in sources if ndarray.is_ndarray_file(s)]
        if len(sources) == 1 and arrays and args.architecture is None:
            if shapes:
                raise UsageError("--input-shape applies to a Gluon export (-symbol.json), not to arrays")
            tensors = ndarray.load(sources[0])
            api.save(args.output, tensors, metadata=metadata)
            report: dict[str, Any] = {"kind": "tensors", "tensors": len(tensors)}
        else:
            net: Block = convert(*sources, architecture=args.architecture, input_shapes=shapes or None,
                                 ignore_extra=args.ignore_extra)
            api.export(net, args.output, metadata=metadata)
            params = net.collect_params()
            report = {"kind": "model", "type": type(net).__name__,
                      "layers": len(list(net.named_blocks())) - 1, "tensors": len(params),
                      "parameters": sum(int(p.data().size) for p in params.values())}
    report = {"output": str(args.output), "sources": sources, **report}
    if args.json:
        print(json.dumps(report, indent=2))
    elif report["kind"] == "model":
        print(f"wrote {report['output']}: a {report['type']} model, {report['layers']} layers, "
              f"{report['parameters']:,} parameters")
    else:
        print(f"wrote {report['output']}: {report['tensors']} tensors")
    return 0
