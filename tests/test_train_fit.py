"""The training loop: learns, is deterministic for a seed, keeps the best epoch, honours masks and hooks."""

import numpy as np
import pytest
import torch

from harness.errors import HarnessError
from harness.model.evaluate import evaluate
from harness.model.train import fit
from models.tinyconv import TinyConv

torch.set_num_threads(1)


def _toy(n: int, seed: int, noise: float = 1.0):
    """4 classes, each a bright band at its own frequency range plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0, noise, size=(n, 49, 40)).astype(np.float32)
    for k in range(4):
        x[y == k, :, k * 10 : k * 10 + 6] += 1.0
    return x, y


@pytest.fixture(scope="module")
def toy():
    return _toy(400, 0), _toy(200, 1)


def _train(toy, seed=0, epochs=3, **kw):
    (xt, yt), (xv, yv) = toy
    torch.manual_seed(seed)
    m = TinyConv()
    h = fit(m, xt, yt, xv, yv, epochs=epochs, seed=seed, progress=False, **kw)
    return m, h


def test_fit_beats_chance_and_records_history(toy):
    m, h = _train(toy)
    assert h["val_acc"][-1] > 0.6 and h["best_val_acc"] > 0.6  # chance is 0.25
    for k in ("train_loss", "train_acc", "val_loss", "val_acc", "epoch"):
        assert len(h[k]) == 3
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert not m.training


def test_fit_is_deterministic_for_a_seed(toy):
    m1, h1 = _train(toy, seed=3, epochs=2)
    m2, h2 = _train(toy, seed=3, epochs=2)
    assert h1["train_loss"] == h2["train_loss"]
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])
    m3, h3 = _train(toy, seed=4, epochs=2)
    assert h3["train_loss"] != h1["train_loss"]


def test_model_keeps_best_validation_epoch(toy):
    m, h = _train(toy, epochs=4, lr=3e-2)  # a high lr makes validation accuracy wander
    (_, _), (xv, yv) = toy
    assert h["best_val_acc"] == max(h["val_acc"])
    assert h["val_acc"][h["best_epoch"] - 1] == h["best_val_acc"]
    assert evaluate(m, xv, yv).accuracy == pytest.approx(h["best_val_acc"])


def test_masks_keep_pruned_weights_at_zero(toy):
    mask = torch.ones(4, 4000)
    mask[:, ::2] = 0
    m, _ = _train(toy, epochs=1, masks={"fc.weight": mask})
    assert (m.fc.weight[:, ::2] == 0).all()
    assert (m.fc.weight[:, 1::2] != 0).all()


def test_unknown_mask_name_is_a_harness_error(toy):
    with pytest.raises(HarnessError, match="nope"):
        _train(toy, epochs=1, masks={"nope": torch.ones(1)})


def test_transform_and_after_step_hooks_are_used(toy):
    calls = {"transform": 0, "step": 0}

    class Scaled(torch.nn.Module):  # a stand-in for a fake-quant wrapper
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x * 0.5)

    def transform(m):
        calls["transform"] += 1
        return Scaled(m)

    def step(m):
        calls["step"] += 1

    _train(toy, epochs=1, model_transform=transform, after_step=step)
    assert calls == {"transform": 1, "step": 4}  # 400 samples / batch 100


def test_per_epoch_copies_are_cycled(toy):
    (xt, yt), (xv, yv) = toy
    copies = np.stack([xt, xt[:, ::-1]])  # [E, N, 49, 40]
    torch.manual_seed(0)
    h = fit(TinyConv(), copies, yt, xv, yv, epochs=2, progress=False)
    assert len(h["val_acc"]) == 2


def test_bad_shapes_are_harness_errors(toy):
    (xt, yt), (xv, yv) = toy
    with pytest.raises(HarnessError, match="labels"):
        fit(TinyConv(), xt, yt[:-1], xv, yv, epochs=1, progress=False)
    with pytest.raises(HarnessError, match="epochs"):
        fit(TinyConv(), xt, yt, xv, yv, epochs=0, progress=False)


def test_fast_dropout_drops_half_and_keeps_the_mean():
    from harness.model.train import _FastDropout

    net = torch.nn.Sequential(torch.nn.Dropout(0.5))
    x = torch.ones(200_000)
    torch.manual_seed(0)
    with _FastDropout(net) as fd:
        fd.train(net, True)
        y = net(x)
        assert 0.49 < float((y == 0).float().mean()) < 0.51
        assert float(y.mean()) == pytest.approx(1.0, abs=0.01)
        assert set(y.unique().tolist()) == {0.0, 2.0}
        fd.train(net, False)
        assert torch.equal(net(x), x)  # evaluation: identity
    net.train()
    assert float((net(x) == 0).float().mean()) > 0.45  # plain nn.Dropout again after the block


def test_spec_augment_masks_runs_to_the_floor():
    from harness.model.train import Augment, augment_batch

    x = torch.ones(64, 49, 40)
    y = torch.zeros(64, dtype=torch.long)
    aug = Augment(time_masks=1, time_mask_frames=8, freq_masks=1, freq_mask_channels=6)
    out, partner, lam = augment_batch(x, y, aug, torch.Generator().manual_seed(0))
    assert torch.equal(partner, y) and torch.equal(lam, torch.ones(64))
    rows_zero = (out == 0).all(dim=2).sum(dim=1)  # masked frames per example
    cols_zero = (out == 0).all(dim=1).sum(dim=1)  # masked channels per example
    assert rows_zero.max() <= 8 and cols_zero.max() <= 6 and rows_zero.float().mean() > 2 and cols_zero.float().mean() > 1
    zero = out == 0
    assert torch.equal(zero, (out == 0).all(dim=2, keepdim=True).expand_as(zero) | (out == 0).all(dim=1, keepdim=True).expand_as(zero))


def test_mixup_mixes_examples_and_labels():
    from harness.model.train import Augment, augment_batch, augmented_loss

    x = torch.arange(8, dtype=torch.float32).view(8, 1, 1).expand(8, 49, 40).clone()
    y = torch.arange(8) % 4
    out, partner, lam = augment_batch(x, y, Augment(mixup=0.4), torch.Generator().manual_seed(1))
    assert (lam >= 0.5).all() and (lam <= 1).all() and (lam < 0.99).any()
    logits = torch.randn(8, 4)
    expect = lam * torch.nn.functional.cross_entropy(logits, y, reduction="none") + \
        (1 - lam) * torch.nn.functional.cross_entropy(logits, partner, reduction="none")
    assert torch.allclose(augmented_loss(logits, y, partner, lam), expect.mean())
    # example i holds value i: mixed = lam * i + (1 - lam) * partner value in [0, 7]
    own, mixed = x[:, 0, 0], out[:, 0, 0]
    assert torch.all(mixed >= lam * own - 1e-5) and torch.all(mixed <= lam * own + (1 - lam) * 7 + 1e-5)
    assert not torch.equal(mixed, own)


def test_fit_with_augmentation_learns_and_is_deterministic(toy):
    from harness.model.train import SPEC_AUGMENT, Augment

    aug = Augment(**{**SPEC_AUGMENT.__dict__, "mixup": 0.2})
    m1, h1 = _train(toy, epochs=3, augment=aug)
    m2, h2 = _train(toy, epochs=3, augment=aug)
    assert h1["augment"]["mixup"] == 0.2 and h1["val_acc"] == h2["val_acc"]
    assert h1["best_val_acc"] > 0.5
    with pytest.raises(HarnessError, match="negative"):
        _train(toy, epochs=1, augment=Augment(time_masks=-1, time_mask_frames=3))
