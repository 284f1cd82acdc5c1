"""The compression figures draw from a variants table (no training) and reject bad inputs."""

from pathlib import Path

import pytest

from harness.figures import compression as figures_compression
from harness.model import variants
from harness.errors import HarnessError


def _rows():
    rows = []
    for vid in variants.all_ids():
        s = variants.parse(vid)
        pct = s.percent or 0
        rows.append({"variant": vid, "test_acc": 0.9 - pct / 200, "nonzero_parameters": 16652 * (1 - pct / 100),
                     "flops": 672004 * (1 - pct / 100), "host_cpu_ms": 0.2 * (1 - pct / 100)})
    return rows


def test_all_figures_written_from_a_table(tmp_path):
    csv_path, _ = variants.write_table([{k: r.get(k, "") for k in variants.TABLE_COLUMNS} for r in _rows()], tmp_path)
    rows = variants.read_table(csv_path)
    written = figures_compression.draw(rows, tmp_path / "fig", device={"struct-l1-40-ft": 5e4, "struct-l1-70-ft": 3e4})
    names = sorted(p.name for p in written)
    assert names == sorted(["fig08_quant_sym.png", "fig09_quant_asym.png", "fig10_struct_params.png",
                            "fig11_struct_flops.png", "fig12_struct_cpu.png", "fig12b_struct_mcu.png",
                            "fig13_unstruct_params.png"])
    assert all(p.stat().st_size > 5000 and p.read_bytes()[:4] == b"\x89PNG" for p in written)


def test_device_results_csv_is_checked(tmp_path):
    bad = tmp_path / "dev.csv"
    bad.write_text("variant,value\nfp32,1\n")
    with pytest.raises(HarnessError, match="missing column"):
        figures_compression._device_times(bad)
    good = tmp_path / "dev2.csv"
    good.write_text("variant,metric,value\nstruct-l1-40-ft,device_network_time,123\nfp32,other,4\n")
    assert figures_compression._device_times(good) == ({"struct-l1-40-ft": 123.0}, "timer units")
    good.write_text("variant,metric,value,unit\nstruct-l1-40-ft,device_network_time,123,instructions\n")
    assert figures_compression._device_times(good) == ({"struct-l1-40-ft": 123.0}, "instructions")
    good.write_text("variant,metric,value,unit\na,device_network_time,1,instructions\nb,device_network_time,2,cycles\n")
    with pytest.raises(HarnessError, match="several units"):
        figures_compression._device_times(good)


def test_every_axis_has_a_unit_and_readable_ticks(tmp_path, monkeypatch):
    """Fig. 12b once printed its x ticks as '350000400000450000' with no unit: ticks are k/M now,
    accuracy is in percent, and every axis label names its unit."""
    import matplotlib
    from matplotlib.figure import Figure

    matplotlib.use("Agg")
    seen: dict[str, tuple] = {}
    real = Figure.savefig

    def capture(fig, path, *args, **kwargs):
        fig.canvas.draw()
        ax = fig.axes[0]
        seen[Path(str(path)).name] = (ax.get_xlabel(), ax.get_ylabel(),
                                      [t.get_text() for t in ax.get_xticklabels() if t.get_text()])
        return real(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", capture)
    device = {f"struct-l1-{p}-{ft}": 700000 * (1 - p / 100) for p in (10, 25, 40, 55, 70) for ft in ("ft", "noft")}
    figures_compression.draw(_rows(), tmp_path / "fig", device=device, device_unit="instructions")
    assert figures_compression.si_count(350000) == "350k" and figures_compression.si_count(1.2e6) == "1.2M"
    xlabel, ylabel, ticks = seen["fig12b_struct_mcu.png"]
    assert "instructions" in xlabel and ticks and all(t.endswith("k") for t in ticks), ticks
    for name, (xlabel, ylabel, ticks) in seen.items():
        assert "(" in xlabel and ylabel == "test accuracy (%)", (name, xlabel)
        assert all(len(t) <= 6 for t in ticks), (name, ticks)


def test_missing_table_names_the_command(tmp_path):
    with pytest.raises(HarnessError, match="variants sweep"):
        variants.read_table(tmp_path / "none.csv")
