"""Structured/unstructured pruning: shapes, exactness of channel removal, sparsity, masks kept."""

import pytest
import torch

from harness.model import prune
from harness.errors import HarnessError
from models.tinyconv import TinyConv

torch.set_num_threads(1)


def _model(seed=0):
    torch.manual_seed(seed)
    m = TinyConv()
    with torch.no_grad():  # biases of both signs, so folding ReLU(bias) of dropped channels matters
        m.conv.bias.copy_(torch.linspace(-0.5, 0.5, 8))
    return m.eval()


@pytest.mark.parametrize("percent,kept", [(10, 7), (25, 6), (40, 5), (55, 4), (70, 2)])
@pytest.mark.parametrize("criterion", ["l1", "l2", "linf"])
def test_structured_gives_smaller_tinyconv_with_identical_outputs(percent, kept, criterion):
    model = _model(percent)
    masked = prune.masked_structured(model, percent / 100, criterion)
    small = prune.structured(model, percent / 100, criterion).eval()
    assert isinstance(small, TinyConv) and small.channels == kept
    assert small.conv.weight.shape == (kept, 1, 10, 8)
    assert small.fc.in_features == 25 * 20 * kept
    x = torch.rand(16, 49, 40) * 26
    with torch.no_grad():
        a, b = masked(x), small(x)
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-5), float((a - b).abs().max())
    # And pruning really changed the network (not a no-op).
    with torch.no_grad():
        assert not torch.allclose(model(x), a, atol=1e-4)


def test_structured_drops_the_lowest_norm_channels():
    model = _model()
    with torch.no_grad():
        model.conv.weight.mul_(torch.arange(1, 9, dtype=torch.float32).view(8, 1, 1, 1) * 10)
        model.conv.weight[3].mul_(0.001)
        model.conv.weight[6].mul_(0.001)
    keep = prune.channel_mask(model, 0.25)
    assert keep.tolist() == [True, True, True, False, True, True, False, True]
    small = prune.structured(model, 0.25)
    assert torch.equal(small.conv.weight, model.conv.weight[keep])


def test_unstructured_sparsity_equals_threshold_per_layer():
    for percent in (10, 25, 40, 55, 70):
        m = prune.unstructured(_model(), percent / 100)
        for w in (m.conv.weight, m.fc.weight):
            assert float((w == 0).float().mean()) == pytest.approx(percent / 100, abs=1 / w.numel())
        s = prune.sparsity(m)
        assert s["weight_sparsity"] == pytest.approx(percent / 100, abs=1e-3)
        assert s["parameters"] == 16652 and s["nonzero_parameters"] < 16652
        assert "weight_orig" not in "".join(n for n, _ in m.named_parameters())


def test_mask_is_kept_during_finetuning():
    model = prune.unstructured_masked(_model(), 0.7)
    zero_before = model.fc.weight == 0
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.rand(32, 49, 40), torch.randint(0, 4, (32,))
    model.train()
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    final = prune.make_permanent(model)
    assert torch.equal(final.fc.weight == 0, zero_before)  # exactly the same weights stay zero
    assert bool((final.fc.weight[~zero_before] != 0).all())


@pytest.mark.parametrize("bad", [-0.1, 1.5, 40, "x"])
def test_threshold_outside_0_1_is_a_harness_error(bad):
    with pytest.raises(HarnessError, match="threshold"):
        prune.structured(_model(), bad)
    with pytest.raises(HarnessError, match="threshold"):
        prune.unstructured(_model(), bad)


def test_unknown_criterion_lists_valid_ones():
    with pytest.raises(HarnessError, match="l1, l2, linf"):
        prune.structured(_model(), 0.4, "l3")
