"""The numeric kernels of the spatial layers and BatchNorm: each forward and its backward, side
by side, on plain numpy arrays.

- ``conv``: convolution in 1, 2 and 3 dimensions (grouped, depthwise, strided, dilated),
  as im2col and one GEMM, and the input's gradient;
- ``conv_grads``: a convolution's weight gradient, in each layout ``conv``'s forwards leave,
  and its bias gradient;
- ``transposed``: the transposed convolution, the input-gradient of ``conv``'s, and its
  gradients through ``conv``'s forward and backward;
- ``im2col``: the forward's columns gathered and multiplied in either layout (or a 1×1
  convolution's input read as it is), bias and activation in the same pass;
- ``columns``: im2col's two layouts (where each output reads, the padded input, the column
  matrix channels last or first, the weight in its order);
- ``shifted``: a convolution at stride 1 (inference, a deferred training forward, the input's
  gradient) as GEMMs on shifted views of the padded input (no im2col), the last axis's taps
  shifted on the output side, where that is faster (with the ``accel`` extra, in 2-D as
  ``compiled_shifted``'s numba loop, which calls BLAS's GEMM itself);
- ``winograd``: a 2-D 3×3 convolution at stride 1 by Winograd's F(4×4, 3×3) (a quarter of the
  multiply-adds: 36 GEMMs over the channels, the tiles' transforms as GEMMs too), for inference
  and the input's gradient, for 32 to 128 channels on enough tiles; with the ``accel`` extra
  its transforms as ``compiled_winograd``'s numba loops, for training too (both gradients);
- ``dilated``: a dilated convolution at stride 1 as an undilated one on the input's phases
  stacked as a batch, where Winograd's compiled transforms then take it;
- ``space_to_depth``: a strided 2-D convolution as a stride-1 one on the input's phases
  stacked as channels, where Winograd then takes it (AlexNet's 11×11/4 becomes a 3×3 on 48
  channels);
- ``winograd3d``: a 3-D k×3×3 convolution at stride 1 on ``winograd``'s transforms in (H, W),
  the depth taps summed in the GEMMs' reduction (inference, and training: both gradients);
- ``depthwise``: a depthwise convolution on blocks of padded (at a stride, phase) planes, each
  tap one multiply-add of the planes shifted by its offset (any stride; forward and both
  gradients), and, where the output keeps its input's sizes, on the unpadded planes by weight
  planes masked where a tap would read padding;
- ``banded``: a 2-D depthwise convolution (any stride) and its gradients as GEMMs of the
  padded planes' rows with banded matrices of the taps;
- ``strips``: a convolution whose columns are large (a stem on big images), its columns
  gathered (the strides' phases apart) and multiplied a strip of output rows at a time, in
  cache, and gathered again so for the weight's gradient (with the ``accel`` extra, the 2-D
  forward as ``compiled_strips``'s numba loop, which calls BLAS's GEMM itself);
- ``slices``: a 3-D convolution with large columns (a C3D stem), each input depth slice's
  columns gathered once and read in place by the output depths that reach it;
- ``col2im``: a strided convolution's taps' products placed back where they read (its input
  gradient, a transposed convolution's forward), by phases or by windows (with the ``accel``
  extra, 2-D windows as ``compiled_col2im``'s numba loop, which calls BLAS's GEMM itself);
- ``pool``: max and average pooling over window offsets, and their gradients (with the
  ``accel`` extra, a 3-wide window at stride 2 folded by ``compiled_pool``'s numba loop);
- ``norm``: BatchNorm as one fused scale and shift, with batch or running statistics, and its
  gradient (with the ``accel`` extra, its passes as ``compiled_norm``'s numba loops);
- ``compiled_activation``: with the ``accel`` extra, ReLU's gradient as one numba loop
  (``activations.relu_grad`` picks it);
- ``parallel``: the memory-bound passes split over the batch on a few threads (numpy runs a
  copy or a ufunc on one core), and a convolution's large passes, GEMMs included;
- ``rowloops``: numpy's ufunc buffer held short while a pass broadcasts a per-channel value or
  a bias along long rows (numpy's buffering of that operand costs up to 2× there);
- ``blas``: numpy's BLAS held to one thread while those passes run its GEMMs on ``parallel``'s
  threads (OpenBLAS's idle workers otherwise spin on the cores they need), and its GEMM for
  compiled loops to call;
- ``derived``: what a kernel derives from a weight alone (Winograd's transformed kernels),
  kept between calls while the weight's bits stay the same (a loaded model's inference);
- ``backend``: which implementation runs (``MODELPACK_KERNELS``): numpy's, or with the
  ``accel`` extra ``compiled``'s numba loops, which ``direct`` runs for the convolutions
  im2col serves badly (depthwise, narrow groups), and ``compiled_depthwise``'s for a stride-1
  depthwise 3×3 or 5×5 (every tap's sum in a register, the batch's examples stacked).

The layers (``nn.conv``, ``nn.pooling``, ``nn.norm``) call the forwards; the autograd rules
(``autograd.spatial_vjps``, ``autograd.layer_vjps``) call the backwards with what the forward
saved, so both passes share one layout and one arithmetic. Kernels import numpy, ``nn.budget``
and ``errors`` only (the ``compiled*`` modules numba, ``blas`` ctypes); they know nothing of
blocks, parameters or configs. The numpy path is the default and the reference: no compiled
extension is needed, and tests check the compiled loops against it.
"""

from __future__ import annotations
