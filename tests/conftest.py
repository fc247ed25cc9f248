"""Shared test settings: hypothesis profiles and the torch oracle's availability."""

from __future__ import annotations

import os

from hypothesis import settings

# CI runs at least 200 examples for round-trip properties (see the archive tests, which ask
# for them explicitly); "dev" keeps local runs snappy when HYPOTHESIS_PROFILE=dev is set.
settings.register_profile("ci", deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=20)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

if os.environ.get("MODELPACK_REQUIRE_ORACLES") == "1":
    # .ci/run's full pass sets this: there the torch oracle, the benchmark's competitors, the
    # compiled kernels (numba, checked against the numpy path), ISA-L's CRC-32 (checked
    # against zlib's), msgspec's manifest decoder (checked against the usual parse) and
    # Pillow (modelpack.image's decoding, checked against MXNet's) must run, and a missing
    # install must fail loudly instead of skipping those tests. The newcomer's pass (README set-up, no torch) leaves it unset and sees
    # visible skips.
    import aiohttp  # noqa: F401
    import fsspec  # noqa: F401
    import isal  # noqa: F401
    import moto.server  # noqa: F401
    import msgspec  # noqa: F401
    import numba  # noqa: F401
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import onnxscript  # noqa: F401  (torch.onnx's default exporter: tests/interop/test_onnx_import*.py)
    import PIL.Image  # noqa: F401  (the image extra: tests/test_image.py, test_gluon_vision_folder.py)
    import s3fs  # noqa: F401
    import safetensors  # noqa: F401
    import torch  # noqa: F401
