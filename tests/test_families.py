"""The development / validation families, the long record and the whole-sample sets (issue 12)."""

import numpy as np
import pytest

from rddpm_signals.datasets import load
from rddpm_signals.datasets.long_record import point_maps
from rddpm_signals.harness.cells import _graded

SMALL = {
    "dev_signals": {"n_train": 20, "n_test": 10, "length": 128},
    "val_signals": {"n_train": 20, "n_test": 10, "length": 128},
    "dev_surfaces": {"n_train": 20, "n_test": 10},
    "val_surfaces": {"n_train": 20, "n_test": 10},
    "whole_sample": {"n_train": 20, "n_test": 10},
    "val_whole_sample": {"n_train": 20, "n_test": 10},
    "long_record": {"train_length": 4096, "test_length": 2048, "window": 64},
    "val_long_record": {"train_length": 4096, "test_length": 2048, "window": 64},
}
FAMILIES = {
    "signals": ("dev_signals", "val_signals"),
    "surfaces": ("dev_surfaces", "val_surfaces"),
    "long": ("long_record", "val_long_record"),
    "whole": ("whole_sample", "val_whole_sample"),
}


def small(name, contamination=0.2, seed=0, **options):
    return load(name, contamination=contamination, seed=seed, **{**SMALL[name], **options})


@pytest.mark.parametrize("name", list(SMALL))
def test_deterministic_shapes_and_masks(name):
    a, b = small(name, seed=5), small(name, seed=5)
    for field in ("train_x", "train_mask", "test_x", "test_mask", "test_label"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.test_x, small(name, seed=6).test_x)
    grid = a.train_x.shape[2:]
    assert a.train_x.ndim == a.dims + 2 and a.train_mask.shape == (len(a.train_x), *grid)
    assert a.test_mask.shape == (len(a.test_x), *grid) and a.train_x.dtype == np.float32
    n = len(a.test_x)
    has = a.test_mask.reshape(n, -1).any(axis=1)
    np.testing.assert_array_equal(has, a.test_label == 1)  # non-empty where the label is 1, empty elsewhere
    assert 0 < a.test_label.sum() < n


@pytest.mark.parametrize("name", list(SMALL))
@pytest.mark.parametrize("contamination", [0.0, 0.3])
def test_contamination_share_is_exact(name, contamination):
    data = small(name, contamination=contamination)
    assert data.train_label.sum() == int(round(len(data.train_x) * contamination))
    if "train_defect" in data.meta:
        np.testing.assert_array_equal(data.meta["train_defect"] != "", data.train_label == 1)


@pytest.mark.parametrize("dev, val", list(FAMILIES.values()))
def test_validation_family_shares_no_defect_kind_with_development(dev, val):
    a = load(dev, n_train=2, n_test=2) if "long" not in dev else small(dev)
    b = load(val, n_train=2, n_test=2) if "long" not in val else small(val)
    assert not set(a.meta["defects"]) & set(b.meta["defects"])
    assert a.meta.get("base", a.meta.get("normal_class")) != b.meta.get("base", b.meta.get("normal_class"))


@pytest.mark.parametrize("name", ["dev_signals", "val_signals", "dev_surfaces", "val_surfaces"])
def test_every_kind_appears_and_changes_the_sample_inside_its_mask(name):
    from scipy import ndimage

    data = small(name, contamination=0.0, n_test=60)
    assert set(data.meta["test_defect"]) == {"", *data.meta["defects"]}
    # The residual from a local median is larger inside the masks than outside them.

    inside, outside = [], []
    for x, mask in zip(data.test_x, data.test_mask, strict=True):
        if mask.any():
            size = (1, 9) if data.dims == 1 else (1, 5, 5)
            residual = np.abs(x - ndimage.median_filter(x, size=size)).mean(axis=0)
            inside.append(residual[mask].mean())
            outside.append(residual[~mask].mean())
    assert np.mean(inside) > np.mean(outside)


def test_long_record_windows_overlap_and_contamination_spreads():
    data = small("long_record", contamination=0.2)
    meta = data.meta
    assert meta["hop"] == 16 and data.train_x.shape[1:] == (1, 64)
    assert meta["window_share"] == pytest.approx(data.train_label.mean())
    # several contaminated windows per anomalous point share: the long-record case of the issue
    assert meta["window_share"] > 3 * meta["point_share"] > 0
    assert meta["test_point_mask"].shape == (1, 2048)


@pytest.mark.parametrize("hop", [None, 32, 64])
def test_datasets_say_whether_their_training_windows_overlap_without_making_them(hop):
    from rddpm_signals.datasets import training_windows_overlap

    for name in FAMILIES["long"]:
        data = small(name, hop=hop)
        assert training_windows_overlap(name, **SMALL[name], hop=hop) == data.meta["train_layout"].overlapping
        assert data.dims == 1  # the harness resolves the "auto" recipe of the overlapping sets as 1D
    assert training_windows_overlap("long_record", **SMALL["long_record"], hop=16)
    assert not training_windows_overlap("long_record", **SMALL["long_record"], hop=64)  # hop = window
    assert not training_windows_overlap("dev_signals", **SMALL["dev_signals"])


def test_long_record_stitching_recovers_a_planted_point_map_exactly():
    """A fake detector whose window maps are cut from one planted per-point map: the stitched per-point map the
    harness scores is that planted map, and the masks are the record's point mask."""
    data = small("long_record")
    layout = data.meta["test_layout"]
    planted = np.random.default_rng(0).random(2048)
    windows = np.stack([planted[o : o + 64] for o in layout.offset[:, 0]])
    maps, masks = point_maps(data, windows)
    np.testing.assert_allclose(maps[0], planted, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(masks, data.meta["test_point_mask"])
    graded_maps, graded_masks = _graded(data, windows)
    np.testing.assert_allclose(graded_maps, maps)
    # the point mask cut into windows is the window mask
    np.testing.assert_array_equal(np.stack([masks[0][o : o + 64] for o in layout.offset[:, 0]]), data.test_mask)


def test_whole_sample_masks_are_whole_images():
    data = small("whole_sample", contamination=0.3)
    for mask, label in zip(data.test_mask, data.test_label, strict=True):
        assert mask.all() if label else not mask.any()
    assert set(data.meta["train_defect"]) <= {"", *data.meta["defects"]}


@pytest.mark.parametrize("name", ["dev_signals", "dev_surfaces", "long_record", "whole_sample"])
def test_bad_options_are_value_errors(name):
    with pytest.raises(ValueError, match="contamination"):
        small(name, contamination=1.0)
    if name != "whole_sample":  # the whole-sample sets choose other classes, not defect kinds
        with pytest.raises(ValueError, match="unknown"):
            small(name, defects=("teleport",))
