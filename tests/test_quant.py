"""Quantizers, STE, calibration and the QAT/PTQ wrappers (random data, CPU, seconds)."""

import pytest
import torch

from harness.model import quant
from harness.errors import HarnessError
from models.tinyconv import TinyConv

torch.set_num_threads(1)


@pytest.mark.parametrize("bits", quant.BITS)
@pytest.mark.parametrize("cls", [quant.SymmetricQuantizer, quant.AsymmetricQuantizer])
def test_grid_has_at_most_2_pow_b_values_and_round_trip_error_is_half_a_step(bits, cls):
    torch.manual_seed(bits)
    x = torch.randn(4000) * 3 + 0.7
    q = cls(bits)
    scale, zp = q.params(x)
    codes = q.quantize(x, scale, zp)
    assert codes.min() >= q.qmin and codes.max() <= q.qmax
    assert len(torch.unique(codes)) <= 2 ** bits
    back = q.dequantize(codes, scale, zp)
    assert len(torch.unique(back)) <= 2 ** bits
    # Inside the range the round trip is within half a step (asym covers [min,max] exactly).
    err = (back - x).abs()
    assert float(err.max()) <= float(scale) / 2 + 1e-5
    assert torch.allclose(q.fake(x, scale, zp), back)


def test_symmetric_zero_point_is_zero_and_grid_symmetric():
    q = quant.SymmetricQuantizer(4)
    scale, zp = q.params(torch.tensor([-2.0, 0.5, 1.0]))
    assert float(zp) == 0 and q.qmin == -q.qmax == -7
    assert float(scale) == pytest.approx(2.0 / 7)


def test_asymmetric_zero_point_represents_zero_exactly():
    q = quant.AsymmetricQuantizer(4)
    x = torch.tensor([0.3, 1.0, 2.5, 4.1])  # all positive: range widened to contain 0
    scale, zp = q.params(x)
    assert float(zp) == q.qmin  # 0.0 maps to the lowest code
    assert float(q.fake(torch.tensor(0.0), scale, zp)) == 0.0
    x = torch.tensor([-1.3, 0.0, 2.9])
    scale, zp = q.params(x)
    assert q.qmin <= float(zp) <= q.qmax and float(zp) == round(float(zp))
    assert float(q.fake(torch.tensor(0.0), scale, zp)) == 0.0
    assert float(scale) == pytest.approx((2.9 + 1.3) / 15)


def test_per_channel_scales_follow_each_channel():
    w = torch.stack([torch.linspace(-1, 1, 10), torch.linspace(-10, 10, 10)])
    scale, _ = quant.SymmetricQuantizer(8).params(w, axis=0)
    assert scale.shape == (2,)
    assert float(scale[1]) == pytest.approx(10 * float(scale[0]))


def test_ste_passes_gradient_inside_range_and_blocks_clamped():
    q = quant.SymmetricQuantizer(4)
    x = torch.tensor([-5.0, -0.33, 0.1, 0.9, 5.0], requires_grad=True)
    scale, zp = torch.tensor(0.1), torch.tensor(0.0)  # range +-0.7
    q.fake(x, scale, zp).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("bits", [1, 9, 0, 16])
def test_bits_outside_2_to_8_is_a_harness_error(bits):
    with pytest.raises(HarnessError, match="outside 2..8"):
        quant.QuantConfig(bits=bits)
    with pytest.raises(HarnessError):
        quant.SymmetricQuantizer(bits)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("per_channel", [False, True])
def test_ptq_wraps_layers_quantizes_weights_and_keeps_shapes(symmetric, per_channel):
    torch.manual_seed(0)
    model = TinyConv().eval()
    x = torch.rand(64, 49, 40) * 26
    cfg = quant.QuantConfig(bits=4, symmetric=symmetric, per_channel=per_channel)
    qm = quant.ptq(model, cfg, x)
    assert isinstance(qm.conv, quant.QuantConv2d) and isinstance(qm.fc, quant.QuantLinear)
    out = qm(x[:5])
    assert out.shape == (5, 4)
    w = qm.conv.quantized_weight()
    rows = w.flatten(1) if per_channel else w.flatten()[None]
    assert all(len(torch.unique(r)) <= 16 for r in rows)
    # The float twin with the dequantized weights agrees with the wrapper up to activation rounding.
    plain = quant.plain_weights(qm, TinyConv())
    assert torch.equal(plain.conv.weight, w)
    assert float(qm.conv.act.hi) == pytest.approx(float(x.max()))
    # 8 bits is close to float; 2 bits is not identical (quantization really happens).
    q8 = quant.ptq(model, quant.QuantConfig(8, symmetric), x)
    with torch.no_grad():
        assert torch.allclose(q8(x[:8]), model(x[:8]), atol=0.05 * float(model(x[:8]).abs().max()))
    assert not torch.allclose(quant.ptq(model, quant.QuantConfig(2, symmetric), x)(x[:8]), model(x[:8]))


def test_uncalibrated_layer_raises():
    qm = quant.quantize_model(TinyConv(), quant.QuantConfig(8))
    with pytest.raises(HarnessError, match="calibration"):
        qm(torch.rand(2, 49, 40))


def _tiny_fit(model, x, y, xv, yv, epochs, lr, seed, progress=False, masks=None):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for i in range(0, len(x), 32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32]).backward()
            opt.step()
    return {}


def test_qat_trains_through_the_ste_and_moves_weights():
    torch.manual_seed(1)
    model = TinyConv().eval()
    x, y = torch.rand(64, 49, 40) * 26, torch.randint(0, 4, (64,))
    cfg = quant.QuantConfig(bits=2, symmetric=False)
    before = model.fc.weight.clone()
    qm = quant.qat(model, cfg, x, y, x, y, epochs=1, lr=1e-3, fit=_tiny_fit)
    assert not torch.equal(qm.fc.layer.weight, before)
    assert torch.equal(model.fc.weight, before)  # the baseline is untouched
    assert qm.conv.act.mode == "frozen" and not qm.training
    assert len(torch.unique(qm.fc.quantized_weight())) <= 4


def test_activations_default_to_8_bits_and_act_bits_narrows_them():
    torch.manual_seed(2)
    x = torch.rand(256, 49, 40) * 26
    seen = {}

    def grab(name):
        def hook(module, inputs, output):
            s, z = module.input_params()
            seen[name] = module.act_quantizer.fake(inputs[0], s, z)
        return hook

    for act_bits, limit in ((8, 256), (3, 8)):
        qm = quant.ptq(TinyConv().eval(), quant.QuantConfig(bits=2, symmetric=False, act_bits=act_bits), x)
        qm.fc.register_forward_hook(grab(act_bits))
        with torch.no_grad():
            qm(x[:32])
        assert 2 < len(torch.unique(seen[act_bits])) <= limit
    with pytest.raises(HarnessError):
        quant.QuantConfig(bits=4, act_bits=12)
