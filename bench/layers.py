"""Time single layers of modelpack against torch's on the CPU: the per-layer sweep of issue 18.

The cases (``bench/_layer_cases.py``): convolutions in 1, 2 and 3 dimensions (plain, grouped,
depthwise, transposed), pooling (max, average, global, ceil mode) and BatchNorm, at the shapes
of the d2l chapters and gluoncv's small models; float32 throughout. Each case times two passes:

- forward: inference (``layer(x)`` against ``module(x)`` under ``torch.no_grad()``, eval mode);
- training: under ``autograd.record()`` the forward, then ``backward`` with a fixed random
  head gradient (the loss Σ head·out: plain ``sum`` would make BatchNorm's input and gamma
  gradients exactly zero, its rows then checking nothing), for the parameters' gradients and,
  except for a network's first layer, the input's; against torch's ``zero_grad``, forward and
  ``backward`` with the same head; BatchNorm on batch statistics.

Both sides start from the same parameters (copied in order). Before timing, the forward
outputs must agree within ``FORWARD_TOLERANCE`` and the training pass's output and gradients
within ``GRAD_TOLERANCE`` (float32: the sums run in different orders, and a weight's gradient
sums a whole batch's positions, so its absolute tolerance scales with its largest value).
Timing follows ``bench/compute.py`` (``median_seconds``: each side's timed calls in a row
after 50 ms of untimed ones, since torch's OpenMP threads spin ~8 ms after each call), as do
the thread pinning, the allocator pin and the options:

    python bench/layers.py [--quick] [--repeats 7] [--threads 2] [--clock wall|cpu]
                           [--kernels numpy|numba] [--backend onnxruntime] [--only conv1d,maxpool]
                           [--write]

``--only`` keeps the cases whose key (the name in lower case, words joined by ``_``: ``conv1d_k3``,
``depthwise_3_3_2``) contains one of the comma-separated words. ``--backend onnxruntime``
hybridizes each layer with it (forward on onnxruntime, training on the kernels), as
``bench/compute.py``'s option. ``--write`` replaces (or adds) this setting's section of
BENCHMARKS.md, one per thread count, clock, kernels and backend.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

ALLOCATOR_PINNED = False  # glibc malloc's thresholds, pinned when run as a script
if __name__ == "__main__":  # as a script; an importing test leaves the environment alone
    from _threads import set_up_script  # the script's own folder is on sys.path

    ALLOCATOR_PINNED = set_up_script(__file__)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from modelpack import autograd  # noqa: E402
from modelpack.nn.kernels import backend, parallel  # noqa: E402

try:
    import compute  # noqa: E402
    from _layer_cases import CASES, Case  # noqa: E402
    from _sections import write_section  # noqa: E402
except ImportError:  # imported from a test, as bench._layer_cases's sibling
    from bench import compute  # noqa: E402
    from bench._layer_cases import CASES, Case  # noqa: E402
    from bench._sections import write_section  # noqa: E402

HEADING = "## Layers (`bench/layers.py`), {threads} thread(s), {clock} time{kernels}"
TARGET = 2.0  # issue 18: every convolution, pooling and BatchNorm layer within 2× of torch
FORWARD_TOLERANCE = compute.FORWARD_TOLERANCE
GRAD_TOLERANCE = {"rtol": 1e-3, "atol": 1e-4}  # atol times the reference's largest |value|


def _build(case: Case, size: str) -> tuple[Any, torch.nn.Module, np.ndarray]:
    """The two layers with the same parameters, and the input: xavier weights, the rest random
    (biases, gamma and beta near their defaults, running variances in [0.5, 2])."""
    rng = np.random.default_rng(0)
    layer, module = case.ours(), case.theirs()
    x = rng.standard_normal(case.shape if size == "full" else case.quick).astype(np.float32)
    params = list(layer.collect_params().values())
    tensors = [v for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")]
    if len(params) != len(tensors):
        raise RuntimeError(f"{case.name}: {len(params)} parameters here, {len(tensors)} in torch")
    if params:
        layer.initialize(init="xavier", seed=0)
    with torch.no_grad():
        for param, tensor in zip(params, tensors, strict=True):
            if tuple(param.shape) != tuple(tensor.shape):
                raise RuntimeError(f"{case.name}: {param.name} {param.shape} against {tuple(tensor.shape)}")
            name = param.name.rsplit("_", 1)[-1]
            if name == "var":
                param.set_data(rng.uniform(0.5, 2.0, param.shape).astype(np.float32))
            elif name == "gamma":
                param.set_data(rng.uniform(0.5, 1.5, param.shape).astype(np.float32))
            elif name != "weight":
                param.set_data((0.1 * rng.standard_normal(param.shape)).astype(np.float32))
            tensor.copy_(torch.from_numpy(param.data()))
    return layer, module, x


def _assert_near(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    scale = float(np.abs(theirs).max()) or 1.0
    np.testing.assert_allclose(ours, theirs, rtol=GRAD_TOLERANCE["rtol"], atol=GRAD_TOLERANCE["atol"] * scale,
                               err_msg=what)


def measure(case: Case, size: str, repeats: int, hybrid: str = "") -> dict[str, Any]:
    """Forward and training medians of one case: {"forward": (ours, theirs), "training": ...},
    after checking that both sides agree; with ``hybrid`` (a backend), the layer hybridized
    with it."""
    layer, module, x = _build(case, size)
    if hybrid:
        layer.hybridize(backend=hybrid)
        layer(x)  # the first call at this shape runs on numpy (and builds the session)
    x_t = torch.from_numpy(x)
    x_grad = x_t.clone().requires_grad_(case.input_grad)
    ours_params = [p for p in layer.collect_params().values() if p.grad_req != "null"]

    def ours_forward() -> object:
        return layer(x)

    def torch_forward() -> object:
        with torch.no_grad():
            return module(x_t)

    module.eval()
    out = ours_forward()
    np.testing.assert_allclose(out, torch_forward().numpy(), **FORWARD_TOLERANCE,
                               err_msg=f"{case.name}: forward")
    forward = compute.median_seconds([ours_forward, torch_forward], repeats)

    head = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    head_t = torch.from_numpy(head)

    def ours_training() -> Any:
        source = autograd.Variable(x) if case.input_grad else x
        with autograd.record():
            result = layer(source)
        result.backward(head)
        return source

    def torch_training() -> None:
        module.zero_grad(set_to_none=True)
        x_grad.grad = None
        module(x_grad).backward(head_t)

    module.train()
    source = ours_training()
    torch_training()
    if case.input_grad:
        assert x_grad.grad is not None
        _assert_near(source.grad, x_grad.grad.numpy(), f"{case.name}: the input's gradient")
    for param, tensor in zip(ours_params, module.parameters(), strict=True):
        assert tensor.grad is not None
        _assert_near(param.grad(), tensor.grad.numpy(), f"{case.name}: {param.name}'s gradient")
    training = compute.median_seconds([ours_training, torch_training], repeats)
    out_shape = "×".join(map(str, out.shape))
    return {"case": case, "out_shape": out_shape, "input": "×".join(map(str, x.shape)),
            "forward": forward, "training": training, "layer": layer}


def rows_of(result: dict[str, Any], *, judged: bool = True, why: str = compute.BUSY) -> list[str]:
    case: Case = result["case"]
    note = f" ({case.note})" if case.note else ""
    shapes = f"{result['input']} → {result['out_shape']}{note}"
    rows = []
    for kind in ("forward", "training"):
        ours, theirs = result[kind]
        ratio = ours / theirs
        times = f"{ours * 1e3:.3f} ms | {theirs * 1e3:.3f} ms"
        verdict = compute._verdict(ratio, TARGET, judged, why)
        row = f"| {case.name} | {case.source} | {kind} | {shapes} | {times} | {ratio:.2f}× | {verdict} |"
        rows.append(row)
    return rows


def chosen(only: str) -> list[Case]:
    words = [w for w in only.lower().split(",") if w]
    return [c for c in CASES if not words or any(w in c.key for w in words)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 3 rounds: checks that it runs")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per case and pass")
    parser.add_argument("--threads", type=int, default=2, help="threads for both sides (default 2)")
    parser.add_argument("--only", default="", help="comma-separated words a case's key must contain one of")
    parser.add_argument("--clock", choices=sorted(compute.CLOCKS), default="wall",
                        help="wall time (default), or the process's CPU time: steadier on a shared "
                        "machine, and fair with --threads 1 only (it counts every thread's spinning)")
    parser.add_argument("--kernels", choices=("numpy", "numba"), default="numpy",
                        help="modelpack's kernels: numpy (default) or the accel extra's compiled loops")
    parser.add_argument("--backend", choices=("", "onnxruntime"), default="",
                        help="hybridize modelpack's layers with this backend (inference on it)")
    parser.add_argument("--write", action="store_true", help="update this section of BENCHMARKS.md")
    args = parser.parse_args()
    compute.clock = compute.CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    parallel.set_threads(args.threads)
    backend.use(args.kernels)
    size, repeats = ("quick", 3) if args.quick else ("full", args.repeats)
    rows = []
    in_use = compute.cores_in_use()
    crowded = compute.busy(in_use, args.threads, args.clock)
    judged, why = compute.judgement(args.quick, crowded)
    for case in chosen(args.only):
        rows += rows_of(measure(case, size, repeats, args.backend), judged=judged, why=why)
        print(rows[-2], rows[-1], sep="\n", flush=True)
    heading = HEADING.format(threads=args.threads, clock=args.clock,
                             kernels=compute.setting_heading(args.kernels, args.backend))
    lines = [
        heading,
        "",
        f"`python bench/layers.py {' '.join(sys.argv[1:])}`: single layers, forward (inference, torch "
        "in eval mode under `no_grad`) and training (forward, backward from a fixed random head gradient: "
        "the parameters' gradients and the input's, except for a network's first layer; BatchNorm on batch "
        f"statistics), float32, {args.clock} time, median of {repeats} rounds each timing "
        f"{compute.CALLS_PER_TURN} calls of each side in a row after "
        f"{compute.SETTLE_SECONDS * 1e3:.0f} ms of untimed ones, the sides in turn, after 2 warm-ups; "
        f"one process, {args.threads} thread(s) on both sides; modelpack's kernels: {backend.name()}; "
        + compute.backend_note(args.backend, "layer", "training")
        + f"{'glibc malloc pinned' if ALLOCATOR_PINNED else 'malloc not pinned'}; "
        f"{compute.software()}, {in_use:.1f} cores busy in the second before and "
        f"{compute.cores_in_use():.1f} after. "
        "Outputs and gradients checked against torch first (float32 tolerances in the script). "
        "Ratio = modelpack ÷ torch: above 1, modelpack is slower; the target is issue 18's, for 2 threads "
        "and wall time. Only the ratio is worth comparing, and it is one run's measurement."
        + ("" if not crowded else " The machine was busy when this run started: no target is judged here."),
        "",
        "| layer | source | pass | shapes | modelpack | torch | ratio | target |",
        "|---|---|---|---|---:|---:|---:|---|",
        *rows,
        "",
    ]
    print("\n".join(lines))
    if args.write:
        write_section(heading, lines)


if __name__ == "__main__":
    main()
