"""Model statistics: the paper's counts for TinyConv, pruned variants, flash/RAM rules, host latency."""

import pytest
import torch

from harness.errors import HarnessError
from harness.model.stats import host_latency, layer_profile, model_stats
from models.tinyconv import TinyConv


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return TinyConv().eval()


def test_tinyconv_counts_match_paper(tiny):
    s = model_stats(tiny)
    assert s["parameters"] == 16_652
    assert s["flops_by_type"] == {"conv2d": 640_000, "linear": 32_004}
    assert s["flops"] == 672_004
    assert s["nonzero_parameters"] == 16_652


def test_flash_estimate_scales_with_bits(tiny):
    assert model_stats(tiny, bits=32)["flash_bytes"] == 16_652 * 4  # 66,608 B = the paper's 0.07 MB
    assert round(model_stats(tiny, bits=32)["flash_mb"], 2) == 0.07
    assert model_stats(tiny, bits=8)["flash_bytes"] == 16_652
    assert model_stats(tiny, bits=4)["flash_bytes"] == 16_652 // 2
    assert model_stats(tiny, bits=2)["flash_bytes"] == 16_652 // 4


def test_ram_estimate_rule(tiny):
    rows = layer_profile(tiny)
    assert [r["type"] for r in rows] == ["ZeroPad2d", "Conv2d", "ReLU", "Dropout", "Linear"]
    elems = sum(r["in_elements"] + r["out_elements"] for r in rows)
    assert elems == (1960 + 2668) + (2668 + 4000) + 2 * (4000 + 4000) + (4000 + 4)
    s32, s8 = model_stats(tiny), model_stats(tiny, bits=8)
    assert s32["ram_bytes"] == elems * 4 == 125_200
    assert s8["ram_bytes"] == elems  # int8 activations on the device
    assert s32["ram_peak_bytes"] == (4000 + 4000) * 4
    assert s32["ram_fwd_bwd_bytes"] == 117_376  # torchinfo's figure: the paper's 117 KB


def test_structured_pruned_tinyconv_counts():
    s = model_stats(TinyConv(channels=5))
    assert s["parameters"] == 5 * 80 + 5 + 25 * 20 * 5 * 4 + 4
    assert s["flops_by_type"]["conv2d"] == 2 * 25 * 20 * 5 * 80
    assert s["flops_by_type"]["linear"] == 2 * 2500 * 4 + 4


def test_zeroed_weights_count_as_nonzero_params_and_flops(tiny):
    m = TinyConv()
    m.load_state_dict(tiny.state_dict())
    with torch.no_grad():
        m.conv.weight[0].zero_()  # one filter: 80 weights, used at 500 positions
        m.fc.weight[:, :1000].zero_()  # 4000 weights
    s = model_stats(m)
    assert s["parameters"] == 16_652
    assert s["nonzero_parameters"] == 16_652 - 80 - 4000
    assert s["flops"] == 672_004  # dense rule unchanged
    assert s["nonzero_flops"] == 672_004 - 2 * 80 * 500 - 2 * 4000
    assert s["flash_nonzero_bytes"] == (16_652 - 4080) * 4
    assert s["sparsity"] == pytest.approx(4080 / 16_652)


def test_stats_leave_model_mode_alone(tiny):
    tiny.train()
    model_stats(tiny)
    assert tiny.training
    tiny.eval()


def test_bad_bits_rejected(tiny):
    with pytest.raises(HarnessError, match="bits"):
        model_stats(tiny, bits=0)


def test_host_latency_cpu(tiny):
    lat = host_latency(tiny, "cpu", repeats=20, warmup=2, threads=1)
    assert lat["repeats"] == 20
    assert 0 < lat["min_ms"] <= lat["median_ms"] <= lat["max_ms"]
    assert lat["device"] == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_host_latency_cuda_without_gpu_is_a_harness_error(tiny):
    with pytest.raises(HarnessError, match="CUDA"):
        host_latency(tiny, "cuda", repeats=1)


def test_stats_cli_json(capsys):
    import json

    from harness.cli import main

    assert main(["stats", "--json", "--channels", "4", "--bits", "8", "--repeats", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parameters"] == 4 * 80 + 4 + 2000 * 4 + 4
    assert out["flash_bytes"] == out["parameters"]
    assert out["host_latency"]["cpu"]["median_ms"] > 0
