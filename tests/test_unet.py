"""One UNet for 1D and 2D: shapes for any size, time conditioning."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rddpm_signals.nets import UNet


@settings(max_examples=15, deadline=None)
@given(length=st.integers(1, 70), channels=st.integers(1, 4), levels=st.integers(1, 3))
def test_1d_output_shape_equals_input_shape(length, channels, levels):
    net = UNet(dims=1, in_channels=channels, channels=8, channel_mult=(1,) * levels)
    x = torch.randn(2, channels, length)
    assert net(x, torch.tensor([0, 7])).shape == x.shape


@settings(max_examples=10, deadline=None)
@given(h=st.integers(1, 23), w=st.integers(1, 23), channels=st.sampled_from([1, 3]))
def test_2d_output_shape_equals_input_shape(h, w, channels):
    net = UNet(dims=2, in_channels=channels, channels=8, channel_mult=(1, 2, 2))
    x = torch.randn(1, channels, h, w)
    assert net(x, torch.tensor([3])).shape == x.shape


@pytest.mark.parametrize("shape, dims", [((2, 3, 31), 1), ((2, 1, 15, 9), 2)])
def test_odd_sizes_and_attention(shape, dims):
    net = UNet(dims=dims, in_channels=shape[1], channels=8, attention=True)
    assert net(torch.randn(shape), torch.tensor([1, 2])).shape == shape


def test_output_depends_on_time():
    torch.manual_seed(0)
    net = UNet(dims=1, in_channels=1, channels=8)
    for p in net.parameters():  # undo the zero init of the output layers so the test sees the time path
        torch.nn.init.normal_(p, std=0.1)
    x = torch.randn(1, 1, 16).repeat(2, 1, 1)
    out = net(x, torch.tensor([0, 500]))
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize("dims", [0, 3])
def test_bad_dims(dims):
    with pytest.raises(ValueError, match="dims"):
        UNet(dims=dims)


def test_wrong_rank_input():
    with pytest.raises(ValueError, match="3-D"):
        UNet(dims=1, channels=8)(torch.randn(2, 1, 4, 4), torch.tensor([0, 0]))
