"""A Java class-file reader, just enough to tell which of pubsub-jobs' fixes an emulator jar
needs (what ``javap`` would list) without running Java: the classes a class refers to, and its
fields and methods. Any malformed input raises :class:`EmulatorError`."""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pubsub_jobs.errors import EmulatorError

__all__ = ["ClassFile", "parse_class", "read_class"]


@dataclass(frozen=True)
class ClassFile:
    """What a class file names: classes it refers to, and its fields and methods as
    (name, descriptor)."""

    classes: frozenset[bytes]
    fields: frozenset[tuple[bytes, bytes]]
    methods: frozenset[tuple[bytes, bytes]]


def read_class(jar: Path, name: str) -> bytes | None:
    """The bytes of ``name`` (``a/b/C.class``) in ``jar``; None when the jar lacks it."""
    try:
        with zipfile.ZipFile(jar) as archive:
            return archive.read(name)
    except KeyError:
        return None
    except (OSError, zipfile.BadZipFile) as exc:
        raise EmulatorError(f"Cannot read {jar}: {exc}") from exc


def parse_class(data: bytes, name: str = "class file") -> ClassFile:
    """Parse a class file (JVMS §4) far enough for :class:`ClassFile`; ``name`` is for errors."""
    try:
        return _parse_class_unchecked(data)
    except (struct.error, IndexError, ValueError) as exc:
        raise EmulatorError(f"Cannot parse {name}: {exc}") from exc


def _parse_class_unchecked(data: bytes) -> ClassFile:
    pos = 8  # magic, minor, major

    def u2() -> int:
        nonlocal pos
        (value,) = struct.unpack_from(">H", data, pos)
        pos += 2
        return int(value)

    def u4() -> int:
        nonlocal pos
        (value,) = struct.unpack_from(">I", data, pos)
        pos += 4
        return int(value)

    utf8: dict[int, bytes] = {}
    class_names: list[int] = []
    count = u2()
    index = 1
    while index < count:
        tag = data[pos]
        pos += 1
        if tag == 1:  # Utf8
            length = u2()
            utf8[index] = data[pos : pos + length]
            pos += length
        elif tag == 7:  # Class: name_index
            class_names.append(u2())
        elif tag in (3, 4, 9, 10, 11, 12, 17, 18):
            pos += 4
        elif tag in (5, 6):  # Long, Double take two slots
            pos += 8
            index += 1
        elif tag in (8, 16, 19, 20):
            pos += 2
        elif tag == 15:
            pos += 3
        else:
            raise ValueError(f"unexpected constant pool tag {tag}")
        index += 1
    pos += 6  # access_flags, this_class, super_class
    interfaces = u2()
    pos += 2 * interfaces

    def members() -> frozenset[tuple[bytes, bytes]]:
        nonlocal pos
        result = []
        for _ in range(u2()):
            pos += 2  # access_flags
            name, descriptor = u2(), u2()
            for _ in range(u2()):  # attributes
                pos += 2
                length = u4()
                pos += length
            result.append((utf8.get(name, b""), utf8.get(descriptor, b"")))
        return frozenset(result)

    fields = members()
    methods = members()
    return ClassFile(
        classes=frozenset(utf8.get(i, b"") for i in class_names), fields=fields, methods=methods
    )
