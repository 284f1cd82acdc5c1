"""Framing and payloads of the board protocol (harness/device/protocol.py): pure functions, no board."""

from __future__ import annotations

import struct

import pytest

from harness.device import protocol as P
from harness.errors import HarnessError


def test_crc16_ccitt_false_check_value():
    assert P.crc16(b"123456789") == 0x29B1
    assert P._crc16_fast(b"123456789") == 0x29B1
    data = bytes(range(256)) * 9
    assert P._crc16_fast(data) == P.crc16(data)


def test_encode_layout_is_little_endian_with_crc_over_header_and_payload():
    frame = P.encode(P.HELLO, 0x1234, b"\x01\x02\x03")
    assert frame[:2] == b"\xa5\x5a"
    version, ftype, rid, length = struct.unpack_from("<BBHH", frame, 2)
    assert (version, ftype, rid, length) == (1, P.HELLO, 0x1234, 3)
    assert struct.unpack("<H", frame[-2:])[0] == P.crc16(frame[2:-2])


def test_round_trip_byte_by_byte_and_in_one_piece():
    frames = [P.encode(t, i, bytes([i]) * (i * 37 % 300)) for i, t in enumerate((1, 2, 3, 0x85, 0x7F), 1)]
    stream = b"".join(frames)
    whole = P.Decoder().feed(stream)
    dec = P.Decoder()
    piecewise = [f for b in stream for f in dec.feed(bytes([b]))]
    assert whole == piecewise
    assert [(f.type, f.request_id, len(f.payload)) for f in whole] == [
        (1, 1, 37), (2, 2, 74), (3, 3, 111), (0x85, 4, 148), (0x7F, 5, 185)]


def test_garbage_and_corrupted_frames_are_skipped():
    good = P.encode(P.INFER_FEATURES | P.RESPONSE, 7, b"scores")
    bad = bytearray(P.encode(P.HELLO, 6, b"hello"))
    bad[9] ^= 0xFF  # payload byte flipped: CRC fails
    garbage = b"\x00\xa5\xa5\x5a\xff\x01" + b"\xa5" * 5 + b"noise"
    dec = P.Decoder()
    frames = dec.feed(garbage + bytes(bad) + good)
    assert [(f.type, f.request_id, f.payload) for f in frames] == [(0x82, 7, b"scores")]
    assert dec.bad_frames >= 1 and dec.dropped_bytes > 0


def test_decoder_rejects_lengths_above_its_limit_without_waiting_for_them():
    dec = P.Decoder(max_payload=P.MAX_PAYLOAD)
    huge_header = b"\xa5\x5a\x01\x82\x01\x00\xff\xff"  # claims 65535 bytes
    good = P.encode(P.HELLO | P.RESPONSE, 2, b"x")
    assert [f.request_id for f in dec.feed(huge_header + good)] == [2]


def test_decode_inference_checks_counts_against_the_frame():
    payload = bytes([2, 4, 0, 0]) + struct.pack("<I", 1234) + struct.pack("<4b", -5, 3, 100, -128)
    inf = P.decode_inference(payload, 1, expected_classes=4)
    assert (inf.label, inf.scores, inf.network) == (2, [-5, 3, 100, -128], 1234)
    with pytest.raises(HarnessError, match="scores"):
        P.decode_inference(payload, 1, expected_classes=3)
    with pytest.raises(HarnessError, match="inconsistent"):
        P.decode_inference(bytes([2, 200, 0, 0]) + payload[4:], 1)  # claims 200 scores
    with pytest.raises(HarnessError, match="inconsistent"):
        P.decode_inference(bytes([9, 4, 0, 0]) + payload[4:], 1)  # class beyond the scores
    audio = bytes([0, 4, 0, 0]) + struct.pack("<3I", 10, 20, 30) + bytes(4)
    a = P.decode_inference(audio, 3)
    assert (a.preprocessing, a.network, a.postprocessing) == (10, 20, 30)


def test_decode_bench_never_trusts_the_board():
    ok = struct.pack("<IIQQQ", 5, 1, 50, 10, 10)
    assert P.decode_bench(ok, 5, 1).mean == 10
    with pytest.raises(HarnessError, match="asked"):
        P.decode_bench(ok, 6, 1)
    with pytest.raises(HarnessError, match="inconsistent"):
        P.decode_bench(struct.pack("<IIQQQ", 5, 1, 10, 10, 10), 5, 1)  # total < min * n
    with pytest.raises(HarnessError, match="32"):
        P.decode_bench(ok[:-1], 5, 1)


def test_decode_hello_requires_every_field_and_keeps_unknown_ones():
    text = ("protocol=1\nfirmware=0.1.0\nbuild_hash=abc\nmodel_id=m\nbackend=aot\nboard=emu_m4\nclock_hz=25000000\n"
            "timer_unit=instructions\ntimer_source=t\ninput_size=1960\noutput_size=4\narena_bytes=10\n"
            "ram_bytes=0\nmax_payload=2056\naudio_samples=16000\nnew_key=1\n")
    h = P.decode_hello(text.encode())
    assert (h.build_hash, h.output_size, h.timer_unit, h.extra) == ("abc", 4, "instructions", {"new_key": "1"})
    with pytest.raises(HarnessError, match="lacks build_hash"):
        P.decode_hello(text.replace("build_hash=abc\n", "").encode())
    with pytest.raises(HarnessError, match="implausible"):
        P.decode_hello(text.replace("output_size=4", "output_size=999").encode())
    assert (h.compiler, h.cflags, h.timing) == ("", "", "")  # firmware 0.1 did not send them


def test_decode_hello_reads_compiler_flags_and_timing_method():
    text = ("protocol=1\nfirmware=0.2.0\nbuild_hash=abc\nmodel_id=m\nbackend=aot\nboard=nano33ble\n"
            "clock_hz=64000000\ntimer_unit=cycles\ntimer_source=dwt-cyccnt\ninput_size=1960\noutput_size=4\n"
            "arena_bytes=10\nram_bytes=0\nmax_payload=2056\naudio_samples=16000\ncompiler=gcc 7.2.1 20170904\n"
            "cflags=-O2 -ffunction-sections -fdata-sections\ntiming=irq-masked\n")
    h = P.decode_hello(text.encode())
    assert (h.compiler, h.cflags, h.timing, h.extra) == (
        "gcc 7.2.1 20170904", "-O2 -ffunction-sections -fdata-sections", "irq-masked", {})
