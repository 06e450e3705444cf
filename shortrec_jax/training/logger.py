"""Metrics to a JSONL file and to TensorBoard event files, without TensorFlow.

TensorBoard reads TFRecord files of `Event` protocol buffers. The few fields a scalar needs
are encoded here by hand (the protobuf wire format is stable and small), so a user who only
trains never installs TensorFlow or a protobuf toolchain.
"""

from __future__ import annotations

import json
import math
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

import jax

# CRC-32C (Castagnoli), reflected polynomial, as TFRecord framing requires.
_CRC_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    """CRC-32C of `data` (test vector: crc32c(b"123456789") == 0xE3069283)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_event(
    wall_time: float, step: int, scalars: dict[str, float] | None = None, file_version: str = ""
) -> bytes:
    """Serialises a tensorflow `Event` holding scalar summaries.

    Event: wall_time = 1 (double), step = 2 (int64), file_version = 3 (string),
    summary = 5 (Summary). Summary: value = 1 (repeated Value). Value: tag = 1 (string),
    simple_value = 2 (float).
    """
    out = bytearray(_varint(1 << 3 | 1) + struct.pack("<d", wall_time))
    out += _varint(2 << 3 | 0) + _varint(step & 0xFFFFFFFFFFFFFFFF)
    if file_version:
        out += _field_bytes(3, file_version.encode())
    if scalars:
        values = b"".join(
            _field_bytes(
                1,
                _field_bytes(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", value),
            )
            for tag, value in scalars.items()
        )
        out += _field_bytes(5, values)
    return bytes(out)


def frame_record(data: bytes) -> bytes:
    """TFRecord framing: length, masked CRC of the length, data, masked CRC of the data."""
    header = struct.pack("<Q", len(data))
    return (
        header
        + struct.pack("<I", _masked_crc(header))
        + data
        + struct.pack("<I", _masked_crc(data))
    )


class MetricLogger:
    """Appends metrics to `<workdir>/metrics.jsonl` and a TensorBoard event file.

    Only process 0 writes; other processes of a multi-host run get a logger that does nothing,
    so logs are never written twice.
    """

    def __init__(self, workdir: str | os.PathLike[str], *, tensorboard: bool = True) -> None:
        self.active = jax.process_index() == 0
        self.workdir = Path(workdir)
        self._jsonl = None
        self._events = None
        if not self.active:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.workdir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        if tensorboard:
            name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
            self._events = open(self.workdir / name, "ab")  # noqa: SIM115
            self._events.write(frame_record(encode_event(time.time(), 0, None, "brain.Event:2")))
            self._events.flush()

    def write(self, step: int, kind: str, metrics: dict[str, Any]) -> None:
        """Logs one event: `kind` ("train", "valid", "test") and its scalar metrics."""
        if not self.active:
            return
        record = {"step": int(step), "kind": kind, "time": time.time(), **metrics}
        assert self._jsonl is not None
        self._jsonl.write(json.dumps(record, sort_keys=True) + "\n")
        self._jsonl.flush()
        if self._events is not None:
            scalars = {
                f"{kind}/{k}": float(v)
                for k, v in metrics.items()
                if isinstance(v, int | float) and math.isfinite(float(v))
            }
            if scalars:
                self._events.write(frame_record(encode_event(time.time(), int(step), scalars)))
                self._events.flush()

    def close(self) -> None:
        for f in (self._jsonl, self._events):
            if f is not None:
                f.close()
        self._jsonl = self._events = None


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Reads a metrics.jsonl file back into a list of records."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
