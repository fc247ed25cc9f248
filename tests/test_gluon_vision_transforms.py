"""``gluon.data.vision.transforms`` against independent references: numpy by hand, Python's
``colorsys`` for hue, torch's ``F.interpolate`` for resizing (skipped without torch), with the
tolerances stated per test; and the random ones' determinism under ``modelpack.random``."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

import modelpack
from modelpack.errors import InputError, UnsupportedFeatureError, UsageError
from modelpack.gluon.data.vision import image, transforms
from modelpack.nn.devices import NDArray


def photo(h: int = 7, w: int = 9, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def test_to_tensor_is_chw_float32_over_255_exactly():
    x = photo()
    out = transforms.ToTensor()(x)
    assert isinstance(out, NDArray) and out.dtype == np.float32 and out.shape == (3, 7, 9)
    assert np.array_equal(out, x.transpose(2, 0, 1).astype(np.float32) / np.float32(255))
    batch = transforms.ToTensor()(np.stack([x, x[::-1]]))
    assert batch.shape == (2, 3, 7, 9) and np.array_equal(batch[1], out[:, ::-1])
    with pytest.raises(InputError, match=r"ToTensor takes an image of shape \(H, W, C\) or \(N, H, W, C\), got shape \(7, 9\)"):
        transforms.ToTensor()(x[..., 0])


def test_normalize_per_channel_and_scalar():
    t = transforms.ToTensor()(photo())
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    out = transforms.Normalize(mean, std)(t)
    by_hand = np.stack([(t[c] - np.float32(mean[c])) / np.float32(std[c]) for c in range(3)])
    assert out.dtype == np.float32 and np.array_equal(out, by_hand)
    assert np.array_equal(transforms.Normalize(0.5, 2.0)(t[None])[0], (t - np.float32(0.5)) / np.float32(2))
    with pytest.raises(InputError, match=r"Normalize's mean has 2 values, the tensor 3 channels"):
        transforms.Normalize([0.1, 0.2])(t)


def test_bilinear_by_hand_half_pixel_centres():
    x = np.array([[0.0], [100.0]], dtype=np.float32)[:, :, None]  # a 2×1 column
    out = image.resize(x, 4, 1)
    # sources (d + 0.5)/2 - 0.5 = -0.25, 0.25, 0.75, 1.25: edges repeat, the middle blends
    assert out[:, 0, 0].tolist() == [0.0, 25.0, 75.0, 100.0]
    shrunk = image.resize(np.arange(16, dtype=np.float32).reshape(4, 4, 1), 2, 2)
    assert shrunk[..., 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]  # a factor of 2 averages 2×2 blocks


@pytest.mark.parametrize(("size", "hw"), [((5, 11), (11, 5)), (64, (64, 64)), ((13, 4), (4, 13)), (3, (3, 3))])
def test_resize_matches_torch_interpolate(size, hw):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = photo(28, 20)
    ours = transforms.Resize(size)(x.astype(np.float32))
    assert ours.shape == (*hw, 3) and ours.dtype == np.float32
    chw = torch.from_numpy(x.astype(np.float32).transpose(2, 0, 1))[None]
    theirs = F.interpolate(chw, size=hw, mode="bilinear", align_corners=False)[0].numpy().transpose(1, 2, 0)
    # float32 values in 0..255: torch computes its source positions in float32, we in float64
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-3)
    # uint8: rounded to nearest, within one level of torch's float result rounded
    as_uint8 = transforms.Resize(size)(x)
    assert as_uint8.dtype == np.uint8
    assert np.abs(as_uint8.astype(int) - np.clip(np.round(theirs), 0, 255)).max() <= 1
    nearest = transforms.Resize(size, interpolation=0)(x)
    theirs = F.interpolate(torch.from_numpy(x.transpose(2, 0, 1).copy())[None].float(), size=hw, mode="nearest")
    assert np.array_equal(nearest, theirs[0].numpy().transpose(1, 2, 0).astype(np.uint8))


def test_resize_sizes_keep_ratio_batches_and_refusals():
    x = photo(30, 20)
    assert transforms.Resize(10, keep_ratio=True)(x).shape == (15, 10, 3)  # short edge 10
    assert transforms.Resize(10, keep_ratio=True)(photo(20, 35)).shape == (10, 17, 3)  # 35·10//20
    assert transforms.Resize((8, 6))(np.stack([x, x])).shape == (2, 6, 8, 3)  # (width, height)
    with pytest.raises(UsageError, match=r"interpolation 2 is not provided"):
        transforms.Resize(8, interpolation=2)(x)


def test_center_crop_as_mxnet():
    x = photo(10, 12)
    assert np.array_equal(transforms.CenterCrop((4, 6))(x), x[2:8, 4:8])  # (w=4, h=6): x0=4, y0=2
    assert np.array_equal(transforms.CenterCrop(5)(x), x[2:7, 3:8])  # int((12-5)/2) = 3
    big = transforms.CenterCrop((24, 5))(x)  # wider than the image: (12, 2.5->2), then resized up
    assert big.shape == (5, 24, 3)
    assert np.array_equal(big, image.resize(x[4:6, 0:12], 5, 24))


def test_random_resized_crop_draws_a_window_and_resizes_it():
    x = photo(40, 40)
    modelpack.random.seed(1)
    whole = transforms.RandomResizedCrop(40, scale=(1, 1), ratio=(1, 1))(x)
    assert np.array_equal(whole, x)  # the whole image, at its own size: unchanged
    aug = transforms.RandomResizedCrop((200, 100), scale=(0.1, 1), ratio=(0.5, 2))
    outs = [aug(x) for _ in range(5)]
    assert all(o.shape == (100, 200, 3) and o.dtype == np.uint8 for o in outs)
    modelpack.random.seed(1)
    transforms.RandomResizedCrop(40, scale=(1, 1), ratio=(1, 1))(x)
    assert all(np.array_equal(a, aug(x)) for a in outs)
    # never fitting (area 4× the image's): MXNet falls back to the centre crop
    assert np.array_equal(transforms.RandomResizedCrop(20, scale=(4, 4))(x), transforms.CenterCrop(20)(x))


def test_flips_happen_half_the_time_and_follow_the_seed():
    x = photo()
    for flip, flipped in ((transforms.RandomFlipLeftRight(), x[:, ::-1]), (transforms.RandomFlipTopBottom(), x[::-1])):
        modelpack.random.seed(0)
        outs = [flip(x) for _ in range(400)]
        kinds = [0 if np.array_equal(o, x) else 1 if np.array_equal(o, flipped) else 2 for o in outs]
        assert 2 not in kinds and 160 < sum(kinds) < 240
        modelpack.random.seed(0)
        assert [int(not np.array_equal(flip(x), x)) for _ in range(400)] == kinds


def test_brightness_contrast_saturation_by_hand():
    x = photo()
    f = x.astype(np.float32)
    luma = f @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    assert np.array_equal(image.brightness(x, 1.7), np.clip(f * np.float32(1.7), 0, 255).astype(np.uint8))
    beta = np.float32(1 - 0.6) * luma.mean()
    np.testing.assert_allclose(image.contrast(f, 0.6), f * np.float32(0.6) + beta, rtol=1e-6)
    by_hand = luma[..., None] * np.float32(1 - 1.4) + f * np.float32(1.4)
    np.testing.assert_allclose(image.saturation(f, 1.4), by_hand, rtol=1e-5, atol=1e-4)
    gray = image.saturation(f, 0.0)
    np.testing.assert_allclose(gray, np.repeat(luma[..., None], 3, axis=2), rtol=1e-6)
    one_channel = x[..., :1]
    assert np.array_equal(image.saturation(one_channel, 0.3), one_channel)
    assert np.array_equal(image.contrast(one_channel, 0.0)[..., 0],
                          np.full(one_channel.shape[:2], int(one_channel.mean(dtype=np.float32)), np.uint8))


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 0.83, 1.3])
def test_hue_matches_colorsys(alpha):
    x = photo(6, 5).astype(np.float32)
    out = image.hue(x, alpha)
    for (i, j), _ in np.ndenumerate(x[..., 0]):
        h, lightness, s = colorsys.rgb_to_hls(*(x[i, j] / 255))
        expected = np.array(colorsys.hls_to_rgb((h + alpha) % 1.0, lightness, s)) * 255
        np.testing.assert_allclose(out[i, j], expected, atol=2e-3)  # float32 HLS vs float64
    as_uint8 = image.hue(x.astype(np.uint8), alpha)  # truncated, as MXNet's saturate_cast
    assert np.abs(as_uint8.astype(np.float32) - out).max() < 1.0 + 1e-3


def test_lighting_adds_the_pca_shift():
    x = photo()
    alpha = np.array([0.1, -0.2, 0.05], dtype=np.float32)
    eig = np.array([[55.46 * -0.5675, 4.794 * 0.7192, 1.148 * 0.4009],
                    [55.46 * -0.5808, 4.794 * -0.0045, 1.148 * -0.8140],
                    [55.46 * -0.5836, 4.794 * -0.6948, 1.148 * 0.4203]])
    expected = np.clip(x + (eig @ alpha), 0, 255)
    assert np.abs(image.lighting(x, alpha).astype(float) - expected).max() < 1.0  # truncated


def test_random_colour_transforms_follow_the_seed_and_the_checkpointed_state():
    x = photo()
    augs = [transforms.RandomBrightness(0.5), transforms.RandomContrast(0.5), transforms.RandomSaturation(0.5),
            transforms.RandomHue(0.5), transforms.RandomLighting(0.1),
            transforms.RandomColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.5)]

    def run(seed: int) -> list[np.ndarray]:
        modelpack.random.seed(seed)
        return [aug(x) for aug in augs for _ in range(3)]

    first = run(5)
    assert all(np.array_equal(a, b) for a, b in zip(first, run(5), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, run(6), strict=True))
    assert all(o.shape == x.shape and o.dtype == np.uint8 for o in first)
    state = modelpack.random.get_state()
    after = augs[-1](x)
    modelpack.random.set_state(state)
    assert np.array_equal(augs[-1](x), after)


def test_zero_amounts_leave_the_image_unchanged():
    x = photo()
    for aug in (transforms.RandomBrightness(0), transforms.RandomContrast(0), transforms.RandomSaturation(0),
                transforms.RandomLighting(0), transforms.RandomColorJitter()):
        assert np.array_equal(aug(x), x), aug
    f = x.astype(np.float32)
    np.testing.assert_allclose(transforms.RandomHue(0)(f), f, atol=2e-3)  # a whole turn


def test_compose_cast_and_reprs():
    trans = transforms.Compose([transforms.Resize(4), transforms.ToTensor(), transforms.Cast("float16")])
    out = trans(photo())
    assert out.shape == (3, 4, 4) and out.dtype == np.float16 and len(trans) == 3
    assert repr(trans) == ("Compose(\n  (0): Resize(size=4, keep_ratio=False, interpolation=1)\n"
                           "  (1): ToTensor()\n  (2): Cast(dtype=float16)\n)")
    assert repr(transforms.RandomColorJitter(brightness=0.5)) == (
        "RandomColorJitter(brightness=0.5, contrast=0, saturation=0, hue=0)")
    with pytest.raises(InputError, match=r"RandomHue takes an image of shape \(H, W, C\), got shape \(1, 7, 9, 3\)"):
        transforms.RandomHue(0.5)(photo()[None])


def test_other_gluon_transforms_are_refused_by_name():
    with pytest.raises(UnsupportedFeatureError, match=r"^gluon.data.vision.transforms.RandomRotation is not "
                                                      r"supported by modelpack: .*has Compose, Cast, ToTensor"):
        transforms.RandomRotation((-10, 10))
