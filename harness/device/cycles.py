"""Cortex-M4 cycle estimate from the instruction stream that QEMU executed.

WHY: the emulated board counts instructions (``-icount``), and nobody can hold instructions against
the paper's milliseconds on a 64 MHz Nano. QEMU does not model cycles, but it can log every
translated block (``-d in_asm``: address, encoding, mnemonic of each instruction) and every block it
runs (``-d exec,nochain``: one line per execution, with no chaining so none is skipped). Replaying
that stream through the per-instruction cycle counts of the Cortex-M4 Technical Reference Manual
(table "Cortex-M4 instruction set summary" and the load/store pipelining rules) gives an estimate
with known error sources (see README "Cycle estimate"); on a real Nano the DWT cycle counter stays
the truth.

The model (``CycleModel``):

* data processing, MUL/MLA/long multiplies, all DSP/SIMD ops (SMLAD, SADD16, SSAT, ...): 1
* SDIV/UDIV: 2-12 (early termination on the operands, which the log does not show): ``div``
* single loads: 2; a load/store right after a single load pipelines (-1) unless its address uses
  the register that load wrote; STR with an immediate offset: 1 (write buffer); a load/store whose
  address register the previous data-processing instruction wrote: +1 (no forwarding path)
* LDRD/STRD: 3; LDM/STM/PUSH/POP: 1 + N registers
* branches: taken (the next executed block does not start at the fall-through address) 1 + P,
  not taken 1; BL 1 + P; TBB/TBH 2 + P; a load/POP into PC adds P; P (pipeline refill) is 1-3
* VFP: VADD/VMUL/VCVT/VMOV/... 1, VMLA/VMLS/VFMA 3, VDIV/VSQRT 14, VLDR/VSTR 2, VLDM/VSTM/VPUSH/
  VPOP 1 + N, VMOV of two core registers 2
* IT: 1 (the core can fold it with its neighbour: an overestimate)

``estimate_log`` reads a QEMU log; ``trace_firmware`` runs a firmware ELF under QEMU with logging
and times the windows between ``board_timer_restart`` and ``board_timer_read`` (the same windows
the firmware's own timer measures).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from harness.errors import HarnessError

NANO_CLOCK_HZ = 64_000_000  # nRF52840 on the Arduino Nano 33 BLE Sense

CONDS = ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al")
_LOADS = {"ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrt", "ldrbt", "ldrht", "ldrsbt", "ldrsht", "ldrex",
          "ldrexb", "ldrexh"}
_STORES = {"str", "strb", "strh", "strt", "strbt", "strht", "strex", "strexb", "strexh"}
_LDM = {"ldm", "ldmia", "ldmdb", "ldmfd", "ldmea", "pop"}
_STM = {"stm", "stmia", "stmdb", "stmfd", "stmea", "push"}
_BRANCH = {"b", "bl", "bx", "blx"}
_CBZ = {"cbz", "cbnz"}
_TB = {"tbb", "tbh"}
_DIV = {"sdiv", "udiv"}
_MUL_PREFIX = ("mul", "mla", "mls", "smul", "umul", "smla", "umla", "umaal", "smus", "smua", "smls", "smmul",
               "smmla", "smmls", "smlsd", "usad", "usada")
_NO_DEST = {"cmp", "cmn", "tst", "teq", "it", "nop", "dmb", "dsb", "isb", "bkpt", "svc", "cpsid", "cpsie",
            "msr", "wfi", "wfe", "sev", "yield"}
_KNOWN = _LOADS | _STORES | _LDM | _STM | _BRANCH | _CBZ | _TB | _DIV | {"ldrd", "strd"}
_REG = re.compile(r"\b(r1[0-5]|r[0-9]|sb|sl|fp|ip|sp|lr|pc)\b")
_ALIAS = {"sb": "r9", "sl": "r10", "fp": "r11", "ip": "r12", "sp": "r13", "lr": "r14", "pc": "r15"}

CLASSES = ("alu", "mul", "div", "load", "store", "ldm_stm", "branch", "vfp")


@dataclass(frozen=True)
class CycleModel:
    """Per-instruction cycle counts; ``refill`` is P of the TRM, ``div`` an SDIV/UDIV (2-12)."""

    refill: int = 2
    div: int = 7
    pipeline: bool = True  # load/store pipelining and the address-dependency stall

    @classmethod
    def bounds(cls) -> tuple["CycleModel", "CycleModel"]:
        """The model's own range (not the board's): fastest and slowest readings of the TRM."""
        return cls(refill=1, div=2, pipeline=True), cls(refill=3, div=12, pipeline=False)


@dataclass(frozen=True)
class Insn:
    addr: int
    size: int  # bytes: 2 or 4
    mnemonic: str  # as the disassembler prints it (condition and width suffixes included)
    operands: str = ""

    @property
    def end(self) -> int:
        return self.addr + self.size


def base_mnemonic(mnemonic: str) -> str:
    """``ldrbne.w`` -> ``ldrb``; ``bls`` -> ``b``; ``vmla.f32`` -> ``vmla``; ``adds`` stays."""
    m = mnemonic.lower().split(".")[0]
    if len(m) > 2 and m[-2:] in CONDS:
        stem = m[:-2]
        if stem in _KNOWN or stem.startswith(("v", "it")) or stem in {"mov", "add", "sub", "orr", "and", "eor",
                                                                        "cmp", "bic", "mvn", "rsb", "lsl", "lsr",
                                                                        "asr", "movs", "adds", "subs", "mul"}:
            return stem
        # ``movne`` / ``addeq`` etc. also carry a condition; ALU either way (1 cycle), so only the
        # classes that cost more than one cycle need exact stems (above).
        if stem.startswith(_MUL_PREFIX):
            return stem
    return m


def _regs(text: str) -> list[str]:
    return [_ALIAS.get(r, r) for r in _REG.findall(text)]


def _reg_list_len(operands: str) -> int:
    inside = operands[operands.find("{") + 1: operands.find("}")] if "{" in operands else ""
    n = 0
    for part in inside.split(","):
        part = part.strip()
        if "-" in part:  # r4-r7 or s16-s31
            a, b = part.split("-")
            n += int(re.sub(r"\D", "", b)) - int(re.sub(r"\D", "", a)) + 1
        elif part:
            n += 1
    if re.search(r"\bd\d+", inside):
        n *= 2  # double registers move two words each
    return max(n, 1)


def _address_part(operands: str) -> str:
    i = operands.find("[")
    return operands[i:] if i >= 0 else ""


def classify(insn: Insn) -> str:
    m = base_mnemonic(insn.mnemonic)
    if m in _LOADS or m == "ldrd":
        return "load"
    if m in _STORES or m == "strd":
        return "store"
    if m in _LDM or m in _STM:
        return "ldm_stm"
    if m in _BRANCH or m in _CBZ or m in _TB:
        return "branch"
    if m in _DIV:
        return "div"
    if m.startswith("v"):
        return "vfp"
    if m.startswith(_MUL_PREFIX):
        return "mul"
    return "alu"


def _writes_pc(insn: Insn, m: str) -> bool:
    ops = insn.operands.replace(" ", "")
    if m in _LDM:
        return "r15" in _regs(insn.operands[insn.operands.find("{"):]) if "{" in ops else False
    if m in _LOADS | {"mov", "add"}:
        return ops.startswith("pc,")
    return False


def block_cycles(insns: list[Insn], taken: bool, model: CycleModel) -> tuple[int, Counter]:
    """Cycles of one executed block, ending in a taken or not-taken control transfer.

    Returns (cycles, cycles per instruction class)."""
    total = 0
    per = Counter()
    prev_kind = None  # "load" (single), "store", "dp" (data processing) or None
    prev_dest: set[str] = set()
    last = len(insns) - 1
    for i, insn in enumerate(insns):
        m = base_mnemonic(insn.mnemonic)
        cls = classify(insn)
        c = 1
        kind = "dp"
        dest: set[str] = set()
        regs = _regs(insn.operands)
        if m in _LOADS or m in _STORES:
            addr_regs = set(_regs(_address_part(insn.operands)))
            store = m in _STORES
            inside = _address_part(insn.operands).split("]")[0]
            reg_offset = len(_regs(inside)) >= 2  # [Rn, Rm] or [Rn, Rm, lsl #2]
            c = 1 if (store and not reg_offset) else 2
            if model.pipeline:
                if prev_kind == "load" and not (addr_regs & prev_dest) and c == 2:
                    c = 1
                elif prev_kind == "dp" and addr_regs & prev_dest:
                    c += 1
            else:
                c = 2
            kind = "store" if store else "load"
            dest = {regs[0]} if regs and not store else set()
            if not store and m != "ldrd" and _writes_pc(insn, m):
                c += model.refill
        elif m in ("ldrd", "strd"):
            c = 3
            kind = None
            dest = set(regs[:2]) if m == "ldrd" else set()
        elif m in _LDM or m in _STM:
            c = 1 + _reg_list_len(insn.operands)
            if m in _LDM and _writes_pc(insn, m):
                c += model.refill
            kind = None
        elif m in _BRANCH or m in _CBZ:
            c = 1 + (model.refill if (i == last and (taken or m in ("bl", "blx"))) else 0)
            kind = None
        elif m in _TB:
            c = 2 + model.refill
            kind = None
        elif m in _DIV:
            c = model.div
            dest = {regs[0]} if regs else set()
        elif m.startswith("v"):
            if m in ("vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms"):
                c = 3
            elif m in ("vdiv", "vsqrt"):
                c = 14
            elif m in ("vldr", "vstr"):
                c = 2
            elif m in ("vldm", "vldmia", "vldmdb", "vstm", "vstmia", "vstmdb", "vpush", "vpop"):
                c = 1 + _reg_list_len(insn.operands)
            elif m == "vmov" and len(regs) >= 2:
                c = 2 if len(regs) + len(re.findall(r"\bs\d+", insn.operands)) >= 4 else 1
            kind = None
        else:
            if m in ("mov", "add") and insn.operands.replace(" ", "").startswith("pc,"):
                c += model.refill
            if m not in _NO_DEST and regs:
                dest = {regs[0]}
                if m in ("umull", "smull", "umlal", "smlal", "smlalbb", "smlald", "smlsld", "umaal"):
                    dest = set(regs[:2])
        total += c
        per[cls] += c
        prev_kind, prev_dest = kind, dest
    return total, per


# ---------------------------------------------------------------------------------- QEMU log parsing
_IN = re.compile(r"^IN:\s*(.*)$")
_INSN = re.compile(r"^0x([0-9a-fA-F]+):\s+((?:[0-9a-fA-F]{4}\s?){1,2})\s+(\S+)\s*(.*)$")
_TRACE = re.compile(r"^Trace \d+: (0x[0-9a-fA-F]+) \[[0-9a-fA-F]+/([0-9a-fA-F]+)/[^\]]*\]\s*(.*)$")


@dataclass
class Block:
    pc: int
    symbol: str
    insns: list[Insn]

    @property
    def fallthrough(self) -> int:
        return self.insns[-1].end


@dataclass
class Window:
    """One measured stretch of execution: executed blocks by (block id, taken)."""

    counts: Counter = field(default_factory=Counter)

    def add(self, key: int, taken: bool) -> None:
        self.counts[(key, taken)] += 1


@dataclass
class Estimate:
    """Instructions and estimated cycles of a stretch of execution, with their split."""

    instructions: int
    cycles: int
    cycles_low: int
    cycles_high: int
    by_class: dict[str, int]  # cycles per instruction class
    by_symbol: dict[str, dict[str, int]]  # function -> {"instructions", "cycles"}

    def ms(self, clock_hz: int = NANO_CLOCK_HZ) -> float:
        return self.cycles / clock_hz * 1e3

    def as_dict(self, clock_hz: int = NANO_CLOCK_HZ) -> dict:
        return {"instructions": self.instructions, "cycles_est": self.cycles, "cycles_low": self.cycles_low,
                "cycles_high": self.cycles_high, "ms_est": round(self.ms(clock_hz), 4), "clock_hz": clock_hz,
                "by_class": self.by_class, "by_symbol": self.by_symbol}


def parse_log(lines: Iterable[str], start_symbol: str | None = None, end_symbol: str | None = None
              ) -> tuple[dict[int, Block], list[Window]]:
    """Blocks and executed windows from a QEMU ``-d in_asm,exec,nochain`` log.

    With start/end symbols, a window opens when a block of ``start_symbol`` runs and closes when
    one of ``end_symbol`` runs (blocks of neither symbol's function are counted); without them the
    whole log is one window."""
    blocks: dict[int, Block] = {}  # by host address of the translated code
    pending: dict[int, Block] = {}  # translated, not yet seen running
    windows: list[Window] = []
    current: Window | None = None if start_symbol else Window()
    if current is not None:
        windows.append(current)
    prev: Block | None = None
    prev_key = 0
    cur_in: Block | None = None
    for line in lines:
        if line.startswith("Trace "):
            cur_in = None
            mt = _TRACE.match(line)
            if not mt:
                continue
            host, pc = int(mt.group(1), 16), int(mt.group(2), 16)
            if pc in pending:
                blocks[host] = pending.pop(pc)
            blk = blocks.get(host)
            if prev is not None and current is not None:
                current.add(prev_key, pc != prev.fallthrough)
            prev = None
            if blk is None:
                continue
            if start_symbol and blk.symbol == start_symbol:
                if current is None or current.counts:  # the timer function may span several blocks
                    current = Window()
                    windows.append(current)
                continue
            if end_symbol and blk.symbol == end_symbol:
                current = None
                continue
            prev, prev_key = blk, host
        elif line.startswith("IN:"):
            mi = _IN.match(line)
            cur_in = Block(0, (mi.group(1) if mi else "").strip() or "?", [])
        elif cur_in is not None and line.startswith("0x"):
            mm = _INSN.match(line)
            if mm:
                enc = mm.group(2).split()
                insn = Insn(int(mm.group(1), 16), 2 * len(enc), mm.group(3), mm.group(4).strip())
                if not cur_in.insns:
                    cur_in.pc = insn.addr
                    pending[insn.addr] = cur_in
                cur_in.insns.append(insn)
    if prev is not None and current is not None:
        current.add(prev_key, False)
    return blocks, windows


def estimate(blocks: dict[int, Block], window: Window, model: CycleModel | None = None) -> Estimate:
    """Weight one window's executed blocks with the cycle model (and its low/high readings)."""
    model = model or CycleModel()
    low, high = CycleModel.bounds()
    insns = cycles = c_low = c_high = 0
    by_class: Counter = Counter()
    by_symbol: dict[str, Counter] = defaultdict(Counter)
    for (key, taken), n in window.counts.items():
        blk = blocks[key]
        c, per = block_cycles(blk.insns, taken, model)
        insns += n * len(blk.insns)
        cycles += n * c
        c_low += n * block_cycles(blk.insns, taken, low)[0]
        c_high += n * block_cycles(blk.insns, taken, high)[0]
        for k, v in per.items():
            by_class[k] += n * v
        by_symbol[blk.symbol]["instructions"] += n * len(blk.insns)
        by_symbol[blk.symbol]["cycles"] += n * c
    return Estimate(insns, cycles, c_low, c_high, {k: by_class.get(k, 0) for k in CLASSES},
                    {s: dict(v) for s, v in sorted(by_symbol.items(), key=lambda kv: -kv[1]["cycles"])})


def estimate_log(path: Path, start_symbol: str | None = None, end_symbol: str | None = None,
                 model: CycleModel | None = None) -> list[Estimate]:
    """One Estimate per window of a QEMU log file."""
    try:
        with open(path, errors="replace") as f:
            blocks, windows = parse_log(f, start_symbol, end_symbol)
    except OSError as exc:
        raise HarnessError(f"cycle estimate: cannot read QEMU log {path}: {exc.strerror}") from None
    return [estimate(blocks, w, model) for w in windows if w.counts]


# ------------------------------------------------------------------------------ firmware traces
TIMER_START, TIMER_END = "board_timer_restart", "board_timer_read"
LOG_OPTIONS = ("-d", "in_asm,exec,nochain")


def _source_key() -> str:
    from harness.cache import content_hash

    return content_hash(Path(__file__).read_bytes())


def trace_firmware(build: Any, features: np.ndarray, audio: np.ndarray | None = None,
                   model: CycleModel | None = None) -> dict[str, Any]:
    """Cycle estimates of the network (INFER_FEATURES) and, with audio, of the front end, network and
    post-processing (INFER_AUDIO) of an emulated-board firmware; cached by build hash and inputs.

    Runs the ELF once under QEMU with the execution log on (a few seconds), so callers keep it off
    hot paths; the cache makes a rerun free. Returns {"network": {...}, "preprocessing": {...}, ...}
    with ``Estimate.as_dict()`` values plus the board's own instruction count for each window."""
    from harness.cache import artifact_dir, atomic_write_json, content_hash
    from harness.device import emulator

    elf = Path(getattr(build, "elf", build))
    if not elf.is_file():
        raise HarnessError(f"cycle estimate: firmware {elf} does not exist (build it first)")
    if not emulator._is_arm_elf(elf):
        raise HarnessError(f"cycle estimate: {elf} is not an emulated Cortex-M4 build (env emu_m4)")
    feats = np.ascontiguousarray(features, dtype=np.int8)
    pcm = None if audio is None else np.ascontiguousarray(audio, dtype=np.int16)
    model = model or CycleModel()
    build_key = getattr(build, "build_hash", None) or content_hash(elf.read_bytes())
    key = content_hash(build_key, feats.tobytes(), pcm.tobytes() if pcm is not None else b"", repr(model),
                       _source_key())
    out = artifact_dir("cycles", key) / "estimate.json"
    if out.is_file():
        return json.loads(out.read_text())
    with tempfile.TemporaryDirectory(prefix="kws-trace-") as tmp:
        log = Path(tmp) / "qemu.log"
        with emulator.start(elf, qemu_args=(*LOG_OPTIONS, "-D", str(log))) as board:
            with board.connect(timeout=120) as link:
                link.hello()
                net = link.infer_features(feats)
                aud = link.infer_audio(pcm) if pcm is not None else None
        ests = estimate_log(log, TIMER_START, TIMER_END, model)
    names = ["network"] + (["preprocessing", "audio_network", "postprocessing"] if aud is not None else [])
    measured = [net.network] + ([aud.preprocessing, aud.network, aud.postprocessing] if aud is not None else [])
    if len(ests) != len(names):
        raise HarnessError(f"cycle estimate: {elf.name}: expected {len(names)} timed windows in the QEMU log "
                           f"({TIMER_START} .. {TIMER_END}), found {len(ests)}")
    result: dict[str, Any] = {"model": {"refill": model.refill, "div": model.div, "pipeline": model.pipeline},
                              "clock_hz": NANO_CLOCK_HZ}
    for name, est, board_count in zip(names, ests, measured):
        d = est.as_dict()
        d["board_instructions"] = board_count  # the firmware timer's count of the same window (resolution 40)
        result[name] = d
    atomic_write_json(out, result)
    return result
