"""The Cortex-M4 cycle model (harness/device/cycles.py) on small known instruction streams.

WHY: the estimate is only as good as its per-instruction rules and its reading of QEMU's log, so
both are pinned here: hand-made blocks with the TRM's counts worked out by hand, a synthetic log
(taken/not-taken branches from the next block's address, windows between the timer functions),
and a real bare-metal loop run under QEMU whose instruction and cycle counts are known in closed
form.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from harness.device import cycles
from harness.device.cycles import CycleModel, Insn, base_mnemonic, block_cycles

M = CycleModel()  # P = 2, div = 7
P = M.refill


def _blk(*lines: str) -> list[Insn]:
    out, addr = [], 0x100
    for line in lines:
        mnem, _, ops = line.partition(" ")
        size = 4 if mnem.endswith(".w") or mnem in ("bl", "smlad", "sdiv", "ldrd", "vmla.f32", "vdiv.f32") else 2
        out.append(Insn(addr, size, mnem, ops.strip()))
        addr += size
    return out


def cyc(*lines: str, taken: bool = False, model: CycleModel = M) -> int:
    return block_cycles(_blk(*lines), taken, model)[0]


@pytest.mark.parametrize("raw, base", [
    ("ldrbne.w", "ldrb"), ("bls", "b"), ("bl", "bl"), ("blx", "blx"), ("bne.w", "b"), ("ldrhs", "ldr"),
    ("ldrsh", "ldrsh"), ("vmla.f32", "vmla"), ("adds", "adds"), ("smlad", "smlad"), ("popeq", "pop"),
    ("bics", "bics"), ("smlabb", "smlabb"), ("umull", "umull"),
])
def test_base_mnemonic(raw, base):
    assert base_mnemonic(raw) == base


def test_loads_pipeline_unless_the_address_depends_on_the_load():
    assert cyc("ldr r0, [r1]") == 2
    assert cyc("ldr r0, [r1]", "ldr r2, [r3, #4]") == 3  # second load pipelined
    assert cyc("ldr r0, [r1]", "ldr r2, [r0]") == 4  # address needs the first load's result
    assert cyc("ldr r0, [r1]", "ldr r2, [r3]", "ldr r4, [r5]") == 4  # TRM: three loads, four cycles
    assert cyc("adds r1, #4", "ldr r2, [r1]") == 1 + 3  # address from the ALU: no forwarding path


def test_stores_and_multiple_transfers():
    assert cyc("str r0, [r1, #4]") == 1  # immediate offset: write buffer
    assert cyc("str r0, [r1, r2]") == 2  # register offset
    assert cyc("str r0, [r1, r2, lsl #2]") == 2
    assert cyc("str r0, [r1], #4") == 1  # post-indexed immediate
    assert cyc("ldr r3, [r4]", "str r0, [r1, r2, lsl #2]") == 2 + 1  # a store pipelines after a load
    assert cyc("ldrd r0, r1, [r2]") == 3
    assert cyc("push {r4, r5, r6, lr}") == 5
    assert cyc("ldm r0!, {r1, r2, r3}") == 4
    assert cyc("pop {r4, pc}", taken=True) == 3 + P
    assert cyc("vpush {d8, d9}") == 5  # two double registers = four words


def test_branches_cost_a_refill_only_when_taken():
    assert cyc("subs r0, #1", "bne #0x100", taken=True) == 1 + 1 + P
    assert cyc("subs r0, #1", "bne #0x100", taken=False) == 2
    assert cyc("bl #0x400", taken=True) == 1 + P
    assert cyc("cbz r0, #0x120", taken=False) == 1
    assert cyc("tbb [pc, r0]", taken=True) == 2 + P
    assert cyc("bx lr", taken=True) == 1 + P


def test_multiplies_divides_and_fpu():
    assert cyc("smlad r0, r1, r2, r0") == 1
    assert cyc("umull r0, r1, r2, r3") == 1
    assert cyc("sdiv r0, r1, r2") == 7
    assert cyc("sdiv r0, r1, r2", model=CycleModel(div=12)) == 12
    assert cyc("vmla.f32 s0, s1, s2") == 3
    assert cyc("vdiv.f32 s0, s1, s2") == 14
    assert cyc("vadd.f32 s0, s1, s2") == 1


def test_bounds_bracket_the_estimate():
    lo, hi = CycleModel.bounds()
    lines = ("ldr r0, [r1]", "ldr r2, [r3]", "sdiv r4, r0, r2", "subs r5, #1", "bne #0x100")
    assert cyc(*lines, taken=True, model=lo) < cyc(*lines, taken=True) < cyc(*lines, taken=True, model=hi)


LOG = """\
----------------
IN: main
0x00000100:  2005       movs     r0, #5
0x00000102:  f000 f801  bl       #0x108

Trace 0: 0x7f0000001000 [00800408/00000100/00000110/ff020200] main
----------------
IN: board_timer_restart
0x00000108:  4770       bx       lr

Trace 0: 0x7f0000001100 [00800408/00000108/00000110/ff020200] board_timer_restart
----------------
IN: loop
0x00000200:  3801       subs     r0, #1
0x00000202:  d1fd       bne      #0x200

Trace 0: 0x7f0000001200 [00800408/00000200/00000110/ff020200] loop
Trace 0: 0x7f0000001200 [00800408/00000200/00000110/ff020200] loop
Trace 0: 0x7f0000001200 [00800408/00000200/00000110/ff020200] loop
----------------
IN: after
0x00000204:  bf00       nop

Trace 0: 0x7f0000001300 [00800408/00000204/00000110/ff020200] after
----------------
IN: board_timer_read
0x00000300:  4770       bx       lr

Trace 0: 0x7f0000001400 [00800408/00000300/00000110/ff020200] board_timer_read
Trace 0: 0x7f0000001000 [00800408/00000100/00000110/ff020200] main
"""


def test_log_windows_and_taken_branches():
    blocks, windows = cycles.parse_log(LOG.splitlines(), "board_timer_restart", "board_timer_read")
    assert len(windows) == 1
    est = cycles.estimate(blocks, windows[0])
    # loop block three times (taken, taken, not taken) + one nop; main and the timer functions are outside
    assert est.instructions == 3 * 2 + 1
    assert est.cycles == 2 * (1 + 1 + P) + 2 + 1
    assert est.by_symbol["loop"]["instructions"] == 6
    assert set(est.by_symbol) == {"loop", "after"}


def test_whole_log_is_one_window_without_symbols():
    blocks, windows = cycles.parse_log(LOG.splitlines())
    assert len(windows) == 1 and cycles.estimate(blocks, windows[0]).instructions == 2 + 1 + 6 + 1 + 1 + 2


needs_arm = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm")

PROGRAM = r"""
    .syntax unified
    .thumb
    .section .isr_vector, "a"
    .word 0x20010000
    .word reset + 1
    .text
    .thumb_func
    .global reset
reset:
    bl board_timer_restart
    movs r0, #100
    ldr r1, =buf
loop:
    ldr r2, [r1]
    ldr r3, [r1, #4]
    smlad r2, r2, r3, r2
    str r2, [r1, #8]
    subs r0, #1
    bne loop
    bl board_timer_read
    movs r0, #0x18          @ SYS_EXIT
    ldr r1, =0x20026        @ ADP_Stopped_ApplicationExit: QEMU exits with 0
    bkpt 0xab
    .thumb_func
    .global board_timer_restart
board_timer_restart:
    bx lr
    .size board_timer_restart, . - board_timer_restart
    .thumb_func
    .global board_timer_read
board_timer_read:
    bx lr
    .size board_timer_read, . - board_timer_read
    .ltorg
    .data
buf: .word 1, 2, 3
"""


@needs_arm
def test_qemu_trace_of_a_known_loop(tmp_path):
    """100 turns of a 6-instruction loop under QEMU: 600 instructions (+ the bl's return), and
    per turn 2 + 1 (pipelined load) + 1 + 1 (STR imm) + 1 + (1 + P) cycles, the last turn not taken."""
    (tmp_path / "p.s").write_text(PROGRAM)
    (tmp_path / "l.ld").write_text("MEMORY { F (rx) : ORIGIN = 0, LENGTH = 64K  R (rwx) : ORIGIN = 0x20000000, "
                                   "LENGTH = 64K }\nSECTIONS { .isr_vector : { KEEP(*(.isr_vector)) } > F "
                                   ".text : { *(.text*) } > F .data : { *(.data*) } > R AT > F }\n")
    elf = tmp_path / "p.elf"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-nostdlib", "-T", str(tmp_path / "l.ld"),
                    str(tmp_path / "p.s"), "-o", str(elf)], check=True, capture_output=True)
    log = tmp_path / "q.log"
    run = subprocess.run(["qemu-system-arm", "-M", "mps2-an386", "-display", "none", "-monitor", "none",
                          "-serial", "none", "-semihosting-config", "enable=on,target=native", "-icount", "shift=0",
                          *cycles.LOG_OPTIONS, "-D", str(log), "-kernel", str(elf)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-300:]
    (est,) = cycles.estimate_log(log, cycles.TIMER_START, cycles.TIMER_END)
    # window: movs, ldr (literal) before the loop (the bl's return lands there), 100 turns, the bl
    # to board_timer_read (as in the firmware, the call into the timer read is inside the window)
    assert est.instructions == 2 + 6 * 100 + 1
    assert set(est.by_symbol) == {"reset"}
    per_turn = 2 + 1 + 1 + 1 + 1 + 1
    assert est.cycles == (1 + 2) + 100 * per_turn + 99 * P + (1 + P)
