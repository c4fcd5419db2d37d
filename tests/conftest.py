import os

import numpy as np
import pytest
import torch

# Two CPU cores in CI: keep torch from oversubscribing them, and keep every run reproducible.
torch.set_num_threads(min(2, os.cpu_count() or 1))



@pytest.fixture
def tiny_1d_data() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 33)
    base = np.sin(2 * np.pi * (t[None, None, :] + rng.uniform(0, 0.1, (12, 1, 1))))
    return (base + 0.05 * rng.normal(size=(12, 2, 33))).astype(np.float32)


@pytest.fixture
def tiny_2d_data() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.normal(size=(10, 1, 12, 11)).astype(np.float32)
