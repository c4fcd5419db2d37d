import numpy as np
import pytest
import torch

# The test tensors are tiny: one thread is faster than two (no thread-pool hand-offs) and cannot be slowed down
# by oversubscription when something else runs on the two CI cores.
torch.set_num_threads(1)


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
