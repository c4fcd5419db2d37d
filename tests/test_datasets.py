"""Built-in datasets: shapes, determinism, contamination, masks, an independent test split, realism checks."""

import numpy as np
import pytest
from scipy import ndimage

from rddpm_signals import datasets
from rddpm_signals.datasets import load

# machine_sound has its own tests (another owner); every other dataset is checked here, at a small size.
SMALL = {
    "forging": {"n_train": 20, "n_test": 10, "length": 64},
    "rolling": {"n_train": 20, "n_test": 10, "size": 32},
    "brick": {"n_train": 20, "n_test": 10},
    "grass": {"n_train": 20, "n_test": 10},
    "gravel": {"n_train": 20, "n_test": 10},
}
NAMES = [name for name in datasets.available() if name != "machine_sound"]


def small(name, contamination=0.2, seed=0, **options):
    return load(name, contamination=contamination, seed=seed, **{**SMALL.get(name, {}), **options})


def test_the_builtin_names_are_registered():
    assert {"forging", "rolling", "brick", "grass", "gravel"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_dtypes(name):
    data = small(name)
    assert data.dims in (1, 2)
    for x, mask in ((data.train_x, data.train_mask), (data.test_x, data.test_mask)):
        assert x.dtype == np.float32 and x.ndim == data.dims + 2
        assert mask.dtype == bool and mask.shape == (x.shape[0],) + x.shape[2:]
        assert np.all(np.isfinite(x))
    assert data.train_x.shape[1:] == data.test_x.shape[1:]
    assert data.test_label.shape == (len(data.test_x),)
    assert set(np.unique(data.test_label)) <= {0, 1}
    assert data.meta["seed"] == 0 and data.meta["contamination"] == 0.2
    if name in SMALL:
        assert len(data.train_x) == SMALL[name]["n_train"] and len(data.test_x) == SMALL[name]["n_test"]


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_data_and_other_seed_other_data(name):
    a, b, c = small(name, seed=3), small(name, seed=3), small(name, seed=4)
    for field in ("train_x", "train_mask", "test_x", "test_mask", "test_label"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.train_x, c.train_x)
    assert not np.array_equal(a.test_x, c.test_x)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("contamination", [0.0, 0.15, 0.5])
def test_contamination_sets_the_number_of_defective_training_samples(name, contamination):
    data = small(name, contamination=contamination)
    n_train = len(data.train_x)
    defective = data.train_mask.reshape(n_train, -1).any(axis=1)
    assert defective.sum() == int(round(n_train * contamination))
    if "train_defect" in data.meta:  # the generator's own record agrees with the masks
        np.testing.assert_array_equal(data.meta["train_defect"] != "", defective)


@pytest.mark.parametrize("name", NAMES)
def test_half_the_test_set_is_defective_and_labels_match_masks(name):
    data = small(name)
    n_test = len(data.test_x)
    has_mask = data.test_mask.reshape(n_test, -1).any(axis=1)
    np.testing.assert_array_equal(data.test_label, has_mask.astype(int))
    assert data.test_label.sum() == int(round(0.5 * n_test))
    if "test_defect" in data.meta:
        np.testing.assert_array_equal(data.meta["test_defect"] != "", has_mask)


@pytest.mark.parametrize("name", NAMES)
def test_test_split_does_not_depend_on_contamination(name):
    clean, dirty = small(name, contamination=0.0), small(name, contamination=0.4)
    np.testing.assert_array_equal(clean.test_x, dirty.test_x)
    np.testing.assert_array_equal(clean.test_mask, dirty.test_mask)
    np.testing.assert_array_equal(clean.test_label, dirty.test_label)


@pytest.mark.parametrize("name", ["forging", "rolling", "whole_sample", "val_whole_sample", "dev_signals"])
def test_a_larger_test_split_leaves_the_training_split_as_it_was(name):
    """benchmarks/larger_test.py rescores saved fits on a larger test set: the fit stays valid only if so."""
    n_test = SMALL.get(name, {}).get("n_test", 10)
    small_test, large_test = small(name, n_test=n_test), small(name, n_test=3 * n_test)
    np.testing.assert_array_equal(small_test.train_x, large_test.train_x)
    np.testing.assert_array_equal(small_test.train_mask, large_test.train_mask)
    assert len(large_test.test_x) == 3 * len(small_test.test_x)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("contamination", [-0.1, 1.0])
def test_bad_contamination_is_refused(name, contamination):
    with pytest.raises(ValueError, match="contamination"):
        small(name, contamination=contamination)


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="nope") as error:
        load("nope")
    for name in NAMES:
        assert name in str(error.value)


# --- image datasets -----------------------------------------------------------------------------------------

IMAGES = [name for name in ("rolling", "brick", "grass", "gravel") if name in NAMES]


@pytest.mark.parametrize("name", IMAGES)
def test_image_defaults_and_size_option(name):
    side = 64 if name == "rolling" else 32
    data = load(name, n_train=4, n_test=2)
    assert data.train_x.shape == (4, 1, side, side) and data.dims == 2
    assert small(name, size=48).test_x.shape == (10, 1, 48, 48)
    assert set(data.meta["defects"]) >= {"scratch"}


@pytest.mark.parametrize("name", IMAGES)
def test_every_defect_kind_can_be_asked_for_alone(name):
    for kind in load(name, n_train=2, n_test=2).meta["defects"]:
        data = small(name, defects=(kind,), contamination=0.5)
        kinds = set(data.meta["train_defect"]) | set(data.meta["test_defect"])
        assert kinds == {kind, ""}
        assert data.test_mask[data.test_label == 1].reshape(5, -1).any(axis=1).all()
    with pytest.raises(ValueError, match="unknown"):
        small(name, defects=("teleport",))


@pytest.mark.parametrize("name", IMAGES)
def test_defects_change_the_image_where_the_mask_is(name):
    # The residual from a 5 × 5 median filter is larger inside the masks than outside them, on average over
    # the defective test images: the masks sit where the images were changed.
    data = small(name, contamination=0.0, n_test=40)
    inside, outside = [], []
    for image, mask in zip(data.test_x[:, 0], data.test_mask, strict=True):
        if mask.any():
            residual = np.abs(image - ndimage.median_filter(image, size=5))
            inside.append(residual[mask].mean())
            outside.append(residual[~mask].mean())
    assert np.mean(inside) > np.mean(outside)


def test_rolling_roll_marks_repeat_along_one_row():
    data = load("rolling", defects=("roll_mark",), n_train=2, n_test=12, seed=1)
    for mask in data.test_mask[data.test_label == 1]:
        labels, count = ndimage.label(mask)
        assert count >= 2
        rows, cols = np.array(ndimage.center_of_mass(mask, labels, range(1, count + 1))).T
        assert np.ptp(rows) < 1.5  # one row across the strip
        whole = cols[(cols > 3) & (cols < mask.shape[1] - 4)]  # marks not cut by the border
        gaps = np.diff(np.sort(whole))
        if len(gaps) >= 2:
            assert np.ptp(gaps) < 2.0  # evenly spaced: the roll circumference
        assert np.all((gaps > 12) & (gaps < 24))


def test_rolling_scratches_run_mostly_along_the_rolling_direction():
    data = load("rolling", defects=("scratch",), n_train=2, n_test=40, seed=2)
    angles = []
    for mask in data.test_mask[data.test_label == 1]:
        rows, cols = np.nonzero(mask)
        if np.ptp(cols) < 6:
            continue
        slope = np.polyfit(cols, rows, 1)[0]
        angles.append(np.degrees(np.arctan(abs(slope))))
    assert len(angles) >= 15
    assert np.median(angles) < 10 and max(angles) < 40


def test_rolling_streaks_are_elongated_along_the_rolling_direction():
    data = load("rolling", contamination=0.0, n_train=20, n_test=2)
    x = data.train_x[:, 0].astype(np.float64)
    detail = x - ndimage.gaussian_filter(x, sigma=(0, 6, 6))
    # Correlation of pixels three apart: along a row (the rolling direction) and down a column (across it).
    along = np.mean(detail[:, :, 3:] * detail[:, :, :-3]) / np.mean(detail**2)
    across = np.mean(detail[:, 3:, :] * detail[:, :-3, :]) / np.mean(detail**2)
    assert along > 0.4 and across < 0.15


@pytest.mark.parametrize("name", [n for n in ("brick", "grass", "gravel") if n in NAMES])
def test_texture_test_crops_come_from_the_other_half_of_the_photograph(name):
    from rddpm_signals.datasets.textures import _source

    photo = _source(name, 2)
    half = photo.shape[0] // 2
    data = small(name, contamination=0.0)

    def found_in(region, crop):
        region = region.astype(np.float32)
        # Candidate top-left corners: where the region equals the crop's first pixel.
        corners = np.nonzero(region[: region.shape[0] - 31, : region.shape[1] - 31] == crop[0, 0])
        windows = (region[r : r + 32, c : c + 32] for r, c in zip(*corners, strict=True))
        return any(np.array_equal(window, crop) for window in windows)

    for crop in data.train_x[:5, 0]:
        assert found_in(photo[:half], crop) and not found_in(photo[half:], crop)
    for crop in data.test_x[data.test_label == 0][:5, 0]:
        assert found_in(photo[half:], crop) and not found_in(photo[:half], crop)


@pytest.mark.parametrize("name", IMAGES)
@pytest.mark.parametrize("option", [{"n_train": 0}, {"n_test": -2}, {"test_anomaly_share": 1.5}])
def test_image_split_sizes_are_checked(name, option):
    with pytest.raises(ValueError, match=next(iter(option))):
        small(name, **option)


def test_texture_options_are_checked():
    with pytest.raises(ValueError, match="size"):
        load("brick", size=200)
    with pytest.raises(ValueError, match="downsample"):
        load("gravel", downsample=3)
    with pytest.raises(ValueError, match="size"):
        load("rolling", size=16)


def test_machine_cycles_train_and_test_are_one_machine():
    """The machine's harmonic phase offsets (and, for a long record, its period) come from the seed, not from each
    split's stream: drawn per split, the test samples were another machine than the training samples."""
    from rddpm_signals.datasets._defects1d import MachineCycles

    a = MachineCycles(np.random.default_rng(1), 3, 128, machine_seed=5, jitter=False)
    b = MachineCycles(np.random.default_rng(2), 2, 256, machine_seed=5, jitter=False)
    for pa, pb in zip(a.phs, b.phs, strict=True):
        np.testing.assert_array_equal(pa[0], pb[0])
    assert np.diff(a.phase[0]).mean() == pytest.approx(np.diff(b.phase[0]).mean(), rel=0.05)
    ds = datasets.load("dev_signals", contamination=0.0, seed=0, n_train=64, n_test=32, test_anomaly_share=0.0)
    train, test = ds.train_x.reshape(64, -1), ds.test_x.reshape(32, -1)
    d_train = np.sort(np.linalg.norm(train[:, None] - train[None], axis=-1), axis=1)[:, 1]
    d_test = np.linalg.norm(test[:, None] - train[None], axis=-1).min(axis=1)
    assert np.median(d_test) < 1.2 * np.median(d_train)  # test samples sit among the training samples
