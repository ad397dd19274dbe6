"""A minimal reader and patcher of CUDA cubins (ELF64): kernel code sections and their
16-byte instructions, at known offsets. Patches keep the file's size and layout; only
instruction words inside ``.text.<kernel>`` sections change."""

from __future__ import annotations

import struct

import attrs

from dgreg.errors import DgregError

__all__ = ["Cubin", "Instruction", "Section"]

_EM_CUDA = 190
INSTRUCTION_BYTES = 16


@attrs.frozen
class Section:
    name: str
    offset: int  # in the file
    size: int


@attrs.frozen
class Instruction:
    """One instruction: its byte offset in the section and its two little-endian words."""

    offset: int
    low: int
    high: int


class Cubin:
    """Read-only view of a cubin; :meth:`patched` returns new bytes."""

    def __init__(self, data: bytes) -> None:
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise DgregError("not a 64-bit little-endian ELF file (a cubin was expected)")
        (self.machine,) = struct.unpack_from("<H", data, 18)
        if self.machine != _EM_CUDA:
            raise DgregError(f"ELF machine {self.machine} is not EM_CUDA ({_EM_CUDA})")
        self.data = bytes(data)
        shoff, = struct.unpack_from("<Q", data, 40)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 58)
        raw = []
        for i in range(shnum):
            name, _type, _flags, _addr, offset, size = struct.unpack_from(
                "<IIQQQQ", data, shoff + i * shentsize)
            raw.append((name, offset, size))
        strtab_offset = raw[shstrndx][1]
        self.sections: dict[str, Section] = {}
        for name_offset, offset, size in raw:
            end = data.index(b"\0", strtab_offset + name_offset)
            name = data[strtab_offset + name_offset:end].decode()
            self.sections[name] = Section(name, offset, size)

    @property
    def sm(self) -> int:
        """The SM number from e_flags (90, 100, ...); the 'a' feature marker is not recorded."""
        (flags,) = struct.unpack_from("<I", self.data, 48)
        return (flags >> 8) & 0xFF

    def kernels(self) -> list[str]:
        return [name[len(".text."):] for name in self.sections if name.startswith(".text.")]

    def text(self, kernel: str) -> Section:
        section = self.sections.get(f".text.{kernel}")
        if section is None:
            raise DgregError(f"no code section for kernel {kernel!r} (have {self.kernels()})")
        return section

    def instructions(self, kernel: str) -> list[Instruction]:
        section = self.text(kernel)
        out = []
        for offset in range(0, section.size, INSTRUCTION_BYTES):
            low, high = struct.unpack_from("<QQ", self.data, section.offset + offset)
            out.append(Instruction(offset, low, high))
        return out

    def patched(self, kernel: str, highs: dict[int, int]) -> bytes:
        """New cubin bytes with the high words at the given section offsets replaced."""
        section = self.text(kernel)
        data = bytearray(self.data)
        for offset, high in highs.items():
            if offset % INSTRUCTION_BYTES or not 0 <= offset < section.size:
                raise DgregError(f"offset {offset:#x} is not an instruction of {kernel}")
            struct.pack_into("<Q", data, section.offset + offset + 8, high)
        return bytes(data)
