"""Budgets file: units, validation with file and line, pattern precedence, failure messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.bench import budgets
from harness.errors import HarnessError


def test_units() -> None:
    assert budgets.parse_size("1 MB") == 1048576
    assert budgets.parse_size("256KB") == 262144
    assert budgets.parse_size("1.5 KiB") == 1536
    assert budgets.parse_size(100) == 100
    assert budgets.parse_time_ms("2 ms") == 2.0
    assert budgets.parse_time_ms("150 us") == pytest.approx(0.15)
    assert budgets.parse_time_ms("1.5 s") == 1500.0
    assert budgets.parse_fraction("90 %") == pytest.approx(0.9)
    assert budgets.parse_fraction(0.5) == 0.5
    assert budgets.parse_count("1.2M") == pytest.approx(1.2e6)
    assert budgets.parse_count("200k") == 200000
    for bad, fn in [("1 GBX", budgets.parse_size), ("12", budgets.parse_time_ms), (5, budgets.parse_time_ms),
                    (1.5, budgets.parse_fraction), ("1 MB", budgets.parse_count), (True, budgets.parse_size),
                    (-1, budgets.parse_size)]:
        with pytest.raises(ValueError):
            fn(bad)


GOOD = """\
# comment
[budget."*"]
accuracy_min = 0.90
flash_max = "1 MB"
ram_max = "256 KB"

[budget."qat-*-2"]
accuracy_min = 0.6
device_network_max = 500000
exact = true

[budget."qat-sym-2"]
accuracy_min = "55 %"

[regression]
accuracy_drop = 0.02
latency_growth = "10 %"
"""


def test_precedence_later_overrides_earlier_key_by_key() -> None:
    b = budgets.loads(GOOD, Path("b.toml"))
    assert b.for_variant("fp32") == {"accuracy_min": 0.9, "flash_max": 1048576, "ram_max": 262144}
    asym = b.for_variant("qat-asym-2")
    assert asym["accuracy_min"] == 0.6 and asym["flash_max"] == 1048576 and asym["exact"] is True
    assert b.for_variant("qat-sym-2")["accuracy_min"] == pytest.approx(0.55)
    assert b.for_variant("qat-sym-2")["device_network_max"] == 500000
    assert b.regression["accuracy_drop"] == 0.02
    assert b.regression["latency_growth"] == pytest.approx(0.10)
    assert b.regression["size_growth"] == 0.02  # default kept
    assert [s.line for s in b.sections] == [2, 7, 12]


def test_checks_and_messages() -> None:
    b = budgets.loads(GOOD)
    c = b.check("qat-asym-2", "accuracy", 0.5)
    assert c.passed is False and c.limit == 0.6 and c.key == "accuracy_min"
    msg = c.message()
    assert "qat-asym-2" in msg and "accuracy" in msg and "0.5" in msg and "0.6" in msg
    assert b.check("fp32", "flash", 2_000_000).passed is False
    assert b.check("fp32", "flash_estimate", 1000).passed is True
    assert "2000000 B" in b.check("fp32", "flash", 2_000_000).message("B")
    assert b.check("fp32", "device_network", 1e9).passed is None  # no budget for fp32
    assert b.check("qat-sym-2", "exact", 0.0).passed is False
    assert b.check("qat-sym-2", "exact", 1.0).passed is True


@pytest.mark.parametrize("text,line,words", [
    ('[budget."*"]\naccuracy_min = 0.9\naccuracy_mni = 0.9\n', 3, ["unknown budget key", "accuracy_mni"]),
    ('[budget."*"]\n\nflash_max = "1 XB"\n', 3, ["flash_max", "bad size"]),
    ('[budget."*"]\nhost_latency_max = 2\n', 2, ["host_latency_max", "unit"]),
    ('[budget."*"]\nexact = "yes"\n', 2, ["exact", "true or false"]),
    ('[budget."a"]\nram_max = 1\n[budget."b"]\nram_max = "lots"\n', 4, ["ram_max"]),
    ('[regression]\naccuracy_drop = 0.01\nspeed_growth = 0.1\n', 3, ["unknown regression key"]),
    ('[budgets."*"]\naccuracy_min = 0.9\n', 1, ["unknown section"]),
    ('[budget."*"]\naccuracy_min = 1.5\n', 2, ["[0, 1]"]),
])
def test_validation_names_file_and_line(tmp_path: Path, text: str, line: int, words: list[str]) -> None:
    p = tmp_path / "budgets.toml"
    p.write_text(text)
    with pytest.raises(HarnessError) as exc:
        budgets.load(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}:{line}:"), msg
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_toml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "b.toml"
    p.write_text('[budget."*"\naccuracy_min = 0.9\n')
    with pytest.raises(HarnessError, match=r"b.toml: invalid TOML.*line 1"):
        budgets.load(p)
    with pytest.raises(HarnessError, match="does not exist"):
        budgets.load(tmp_path / "nope.toml")


def test_repo_budgets_file_is_valid() -> None:
    b = budgets.load(budgets.default_path())
    assert b.for_variant("fp32")["exact"] is True
    assert set(b.regression) == set(budgets.REGRESSION_KEYS)


def test_report_only_variants_are_data_points_without_floors() -> None:
    b = budgets.loads('[budget."*"]\naccuracy_min = 0.85\nexact = true\nflash_max = "1 MB"\n\n'
                      '[budget."ptq-*-2"]\nreport_only = true\n')
    assert b.report_only("ptq-sym-2") and not b.report_only("fp32")
    assert b.check("ptq-sym-2", "accuracy", 0.25).passed is None  # the floor does not apply to a data point
    assert b.check("ptq-sym-2", "exact", 0.0).passed is False  # the other limits still do
    assert b.check("ptq-sym-2", "flash", 2 ** 21).passed is False
    assert b.check("fp32", "accuracy", 0.25).passed is False
    assert budgets.Budgets.from_json(b.to_json()).report_only("ptq-asym-2")  # as a run's metadata keeps it
    with pytest.raises(HarnessError, match=r"<budgets>:2: report_only: expected true or false"):
        budgets.loads('[budget."x"]\nreport_only = "yes"\n')


def test_budgets_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "budgets.toml"
    bad.write_bytes(b'[budget."*"]\n# caf\xe9 latin-1\naccuracy_min = 0.9\n')
    with pytest.raises(HarnessError, match=r"budgets.toml:2: not UTF-8 text \(byte 0xe9"):
        budgets.load(bad)
    with pytest.raises(HarnessError, match="is a directory"):
        budgets.load(tmp_path)


def test_every_floor_in_the_shipped_file_says_why() -> None:
    """Each *_min key or report_only flag has a reason: a comment on its line or right above it, on
    its section header, or right above the header."""
    path = budgets.default_path()
    b = budgets.load(path)
    lines = path.read_text().splitlines()
    for sec in b.sections:
        header = sec.line - 1
        above = header - 1
        head_comments = "#" in lines[header] or (above >= 0 and lines[above].lstrip().startswith("#"))
        for key in sec.values:
            if key.endswith("_min") or key == "report_only":
                line = budgets._line_of(path.read_text(), key, budgets._header_re(sec.pattern)) - 1
                said = "#" in lines[line] or lines[line - 1].lstrip().startswith("#") or head_comments
                assert said, f"{path.name}:{line + 1}: {key} without a reason"
    assert any(b.report_only(v) for v in ("ptq-sym-2", "struct-l1-70-noft"))
