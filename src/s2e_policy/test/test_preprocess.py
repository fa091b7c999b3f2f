import numpy as np
import pytest
from PIL import Image

from s2e_policy.errors import S2EError
from s2e_policy.preprocess import center_crop_square, preprocess_image


@pytest.fixture(scope="module")
def euroc_frame(fixtures_dir):
    with Image.open(fixtures_dir / "gnm" / "euroc_cam1" / "0.jpg") as image:
        return np.asarray(image.convert("RGB"))


def test_output_contract(euroc_frame):
    out = preprocess_image(euroc_frame, 64)
    assert out.shape == (3, 64, 64)
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(out, preprocess_image(euroc_frame, 64))  # deterministic


def test_centre_crop_without_resize_is_exact():
    image = np.zeros((4, 7, 3), dtype=np.uint8)
    image[:, :, 0] = np.arange(7, dtype=np.uint8) * 10  # column index in red
    image[:, :, 1] = np.arange(4, dtype=np.uint8)[:, None] * 20  # row index in green
    out = preprocess_image(image, 4)
    np.testing.assert_allclose(out[0], np.tile([10, 20, 30, 40], (4, 1)) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(out[1, :, 0], np.array([0, 20, 40, 60]) / 255.0, rtol=1e-6)


def test_centre_crop_of_tall_image():
    tall = np.arange(6 * 2 * 3, dtype=np.uint8).reshape(6, 2, 3)
    np.testing.assert_array_equal(center_crop_square(tall), tall[2:4])


def test_resize_keeps_constant_and_orders_gradient():
    constant = np.full((240, 376, 3), 77, dtype=np.uint8)
    np.testing.assert_allclose(preprocess_image(constant, 32), 77 / 255.0, rtol=1e-6)
    ramp = np.broadcast_to(np.linspace(0, 255, 300).astype(np.uint8)[None, :, None], (200, 300, 3))
    row = preprocess_image(np.ascontiguousarray(ramp), 50)[0, 25]
    assert np.all(np.diff(row) >= 0) and row[-1] > row[0]


def test_downscale_preserves_mean_brightness(euroc_frame):
    out = preprocess_image(euroc_frame, 60)
    crop = center_crop_square(euroc_frame).astype(np.float64) / 255.0
    assert out.mean() == pytest.approx(crop.mean(), abs=0.01)


@pytest.mark.parametrize(
    ("image", "size", "match"),
    [
        (np.zeros((8, 8, 3), dtype=np.float32), 4, "uint8"),
        (np.zeros((8, 8), dtype=np.uint8), 4, r"\(H, W, 3\)"),
        (np.zeros((8, 8, 4), dtype=np.uint8), 4, r"\(H, W, 3\)"),
        (np.zeros((8, 8, 3), dtype=np.uint8), 0, "size"),
    ],
)
def test_bad_input(image, size, match):
    with pytest.raises(S2EError, match=match):
        preprocess_image(image, size)
