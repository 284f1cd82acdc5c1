"""The labgrid farm path against a real local farm (tests/labfarm.py): a labgrid-coordinator and two
labgrid-exporters on 127.0.0.1, each exporting one emulated board (python -m harness.device.emuboard).

What must hold: a board reached through coordinator + exporter + place runs the same build as
``--device=emu`` and gives the same numbers bit for bit; every place is released when the run ends;
a place held by someone else is reported in one line and left alone; a lab host that dies mid-run
fails only its own work, in one line, while the other place finishes.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labfarm import REPO, LabFarm, free_port  # noqa: E402

pytest.importorskip("labgrid")

PLACES = ("emu-1", "emu-2")
RUN_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory):
    f = LabFarm(tmp_path_factory.mktemp("labfarm"))
    try:
        f.start_coordinator()
        for place in PLACES:
            f.add_emulated_board(place)
        yield f
    finally:
        f.close()


def _harness(farm: LabFarm, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO, env=farm.env(**env),
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def _pytest(farm: LabFarm, results: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "suites/test_device.py",
                           "--results-dir", str(results), "--device-samples", "16", *args],
                          cwd=REPO, env=farm.env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def _device_rows(results: Path) -> tuple[dict, list]:
    from harness.bench import results as res

    run = res.load_run(res.list_runs(results)[-1])
    table = {(r.variant, r.metric): r.value for r in run.rows}
    return table, run.rows


def test_cli_through_a_place_equals_emu_and_releases_it(farm: LabFarm) -> None:
    args = ["device", "infer", "--variant", "fp32", "--random", "--count", "6", "--json"]
    lab = _harness(farm, *args, "--device", "labgrid:emu-1")
    assert lab.returncode == 0, lab.stderr[-2000:]
    emu = _harness(farm, *args, "--device", "emu")
    assert emu.returncode == 0, emu.stderr[-2000:]
    a, b = json.loads(lab.stdout), json.loads(emu.stdout)
    assert a["identical_to_reference"] == b["identical_to_reference"] == 6
    assert a["network_mean"] == b["network_mean"]  # QEMU instruction counts: equal, not close
    assert a["hello"]["build_hash"] == b["hello"]["build_hash"]
    assert farm.acquired_by("emu-1") is None


def test_place_held_by_someone_else_is_reported_not_taken(farm: LabFarm) -> None:
    farm.client("-p", "emu-2", "acquire", user="someone-else")
    try:
        r = _harness(farm, "device", "hello", "--device", "labgrid:emu-2", KWS_LG_WAIT="1")
        assert r.returncode != 0
        err = r.stderr.strip()
        assert "Traceback" not in r.stderr and len(err.splitlines()) == 1, err
        assert "labgrid place emu-2: held by" in err and "someone-else" in err and "not taken" in err
        assert farm.acquired_by("emu-2").endswith("/someone-else")
        waiting = subprocess.Popen([sys.executable, "-m", "harness", "device", "infer", "--variant", "fp32", "--random",
                                    "--count", "2", "--json", "--device", "labgrid:emu-2"], cwd=REPO,
                                   env=farm.env(KWS_LG_WAIT="300"), text=True, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        time.sleep(3)  # not a timing assertion: the release below may come before or after it starts waiting
        farm.client("-p", "emu-2", "release", user="someone-else")
        out, err = waiting.communicate(timeout=RUN_TIMEOUT_S)
        assert waiting.returncode == 0, err  # it waited for the place and got it once it was free
        assert json.loads(out)["identical_to_reference"] == 2
        assert farm.acquired_by("emu-2") is None
    finally:
        if farm.acquired_by("emu-2"):
            farm.client("-p", "emu-2", "release", "--kick", user="someone-else")


def _flashed(farm: LabFarm, place: str) -> bool:
    with socket.create_connection(("127.0.0.1", farm.boards[place][1]), timeout=5) as s:
        s.sendall(b"STATUS\n")
        return not s.makefile("rb").readline().decode().strip().endswith("idle")


def test_lab_host_dying_mid_run_fails_its_work_in_one_line_other_place_finishes(tmp_path: Path) -> None:
    f = LabFarm(tmp_path)  # a farm of its own: this test kills one of its hosts
    try:
        f.start_coordinator()
        for place in PLACES:
            f.add_emulated_board(place)
        args = ["device", "infer", "--variant", "fp32", "--random", "--json"]
        doomed = subprocess.Popen([sys.executable, "-m", "harness", *args, "--count", "100000",
                                   "--device", "labgrid:emu-2"], cwd=REPO, env=f.env(), text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not _flashed(f, "emu-2"):
            assert doomed.poll() is None and time.monotonic() < deadline, doomed.communicate()
            time.sleep(0.2)
        f.kill("exporter-emu-2")  # the lab host goes down: its exporter and the board it serves
        f.kill("board-emu-2")
        _, err = doomed.communicate(timeout=120)
        assert doomed.returncode != 0
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert err.startswith("error: labgrid place emu-2: ")  # gone exporter, or board stopped answering
        other = subprocess.run([sys.executable, "-m", "harness", *args, "--count", "4", "--device", "labgrid:emu-1"],
                               cwd=REPO, env=f.env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        assert other.returncode == 0, other.stderr[-2000:]
        assert json.loads(other.stdout)["identical_to_reference"] == 4
        assert f.acquired_by("emu-1") is None and f.acquired_by("emu-2") is None
        gone = subprocess.run([sys.executable, "-m", "harness", "device", "hello", "--device", "labgrid:emu-2"],
                              cwd=REPO, env=f.env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        assert gone.returncode != 0 and "labgrid place emu-2: matches no exported resource" in gone.stderr
    finally:
        f.close()


def test_suites_over_two_places_equal_the_emu_run_bit_for_bit(farm: LabFarm, tmp_path: Path) -> None:
    """One variant per place (-n 2): the farm run's device numbers equal a --device=emu run's."""
    variants = "fp32,qat-sym-4"
    lab = _pytest(farm, tmp_path / "lab", "-n", "2", "--device=labgrid:emu-1,labgrid:emu-2", "--variants", variants)
    assert lab.returncode == 0, lab.stdout[-3000:] + lab.stderr[-2000:]
    emu = _pytest(farm, tmp_path / "emu", "--device=emu", "--variants", variants)
    assert emu.returncode == 0, emu.stdout[-3000:]
    got, rows = _device_rows(tmp_path / "lab")
    want, _ = _device_rows(tmp_path / "emu")
    device_metrics = {k for k in want if k[1].startswith(("device_", "exact", "audio_", "flash", "ram"))
                      and k[1] != "device_host_ratio"}  # the ratio divides by a host timing
    assert len(device_metrics) >= 20
    assert {k: got.get(k) for k in device_metrics} == {k: want[k] for k in device_metrics}
    board_rows = [r for r in rows if r.metric == "device_network"]
    assert {r.place for r in board_rows} == set(PLACES)  # one variant on each place
    for r in board_rows:
        assert r.device == f"labgrid:{r.place}" and r.exporter == f"exp-{r.place}"
        assert r.exporter_host == "127.0.0.1" and r.board_serial.startswith(f"{r.place}/qemu-")
    run_dir = sorted((tmp_path / "lab" / "runs").iterdir())[-1]
    info = {json.loads(p.read_text())["place"] for p in (run_dir / "devices").glob("*.json")}
    assert info == set(PLACES)
    assert all(farm.acquired_by(p) is None for p in PLACES)


def test_unknown_place_and_unreachable_coordinator_are_one_line(farm: LabFarm) -> None:
    r = _harness(farm, "device", "hello", "--device", "labgrid:nosuch")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: labgrid place nosuch: not on coordinator {farm.coordinator} (places: emu-1, emu-2)"]
    r = _harness(farm, "device", "hello", "--device", "labgrid:board=nano33ble")
    assert r.returncode == 2 and r.stderr.strip() == f"error: labgrid: no place on {farm.coordinator} has board=nano33ble"
    r = _harness(farm, "device", "hello", "--device", "labgrid:emu-1", LG_COORDINATOR=f"127.0.0.1:{free_port()}")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "not reachable" in r.stderr and "Traceback" not in r.stderr


def test_sigterm_mid_run_releases_the_place(farm: LabFarm) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "harness", "device", "infer", "--variant", "fp32", "--random",
                             "--count", "100000", "--device", "labgrid:emu-1"], cwd=REPO, env=farm.env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while farm.acquired_by("emu-1") is None:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Traceback" not in err, err
    assert farm.acquired_by("emu-1") is None


def test_a_tag_names_every_place_carrying_it(farm: LabFarm) -> None:
    farm.client("-p", "emu-2", "set-tags", "rack=b")
    code = ("from harness.device import boards; "
            "print(' '.join(f'{s.url}:{s.env}' for s in boards.resolve('labgrid:board=emu')), "
            "' '.join(s.url for s in boards.resolve('labgrid:rack=b')))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=farm.env(), capture_output=True, text=True,
                       timeout=RUN_TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["labgrid:emu-1:emu_m4", "labgrid:emu-2:emu_m4", "labgrid:emu-2"]
