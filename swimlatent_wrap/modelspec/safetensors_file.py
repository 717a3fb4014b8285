"""A .safetensors file's header, read and rewritten without loading a tensor.

Layout (safetensors format): 8 bytes little-endian header length N, N bytes of UTF-8 JSON (a
``__metadata__`` map of strings plus one ``{"dtype", "shape", "data_offsets"}`` entry per tensor;
trailing spaces allowed), then the data section, which the tensors' byte ranges must cover exactly.

    read_safetensors(path) -> Safetensors        parse and check the header against the file
    data_sha256(info) -> str                     lowercase sha256 of every byte after the header
    write_header(info, metadata, out=None)       new metadata: in place when it fits, else a
                                                 streamed copy (copy_file_range/sendfile) + rename
    interrupted_write(path) -> Interrupted|None  how far an interrupted in-place write got (reads only)
    recover_interrupted_write(path)              keep the new header it wrote whole, or put back the old
                                                 one it left half-written; then remove its undo file
    read_tensor_bytes(handle, info, name)        one tensor's bytes, by offset

Nothing here imports numpy: the header is small, the data section is only hashed or copied.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}
MAX_HEADER = 100 * 1024 * 1024  # the safetensors format's own limit
CHUNK = 8 * 1024 * 1024  # read/hash block: memory stays at one block whatever the file size
# A header that must grow is padded to this boundary, so later stamps (a new date, a thumbnail)
# fit in place and the data section starts page-aligned.
HEADER_ALIGN = 4096


class NotSafetensors(ValueError):
    """The file is missing, truncated or not in the safetensors format; the message says how."""


@dataclass(frozen=True)
class Safetensors:
    path: Path
    size: int
    header_bytes: int  # 8 + the header length: where the data section starts
    tensors: dict[str, tuple[str, list[int]]] = field(repr=False)
    metadata: dict[str, str] = field(repr=False)
    offsets: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)  # within the data section

    @property
    def data_bytes(self) -> int:
        return self.size - self.header_bytes

    def header_json(self, metadata: dict[str, str]) -> bytes:
        """The header with ``metadata`` (keys sorted) and the tensor entries as they are."""
        header: dict = {}
        if metadata:
            header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
        for name, (dtype, shape) in self.tensors.items():
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": list(self.offsets[name])}
        return json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def read_safetensors(path: Path) -> Safetensors:
    """The checked header of ``path``; NotSafetensors saying what is wrong otherwise."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise NotSafetensors(f"{size} bytes: too short for a safetensors header")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER:
                raise NotSafetensors(f"header length {length} is over the format's limit of {MAX_HEADER} bytes: not safetensors")
            if 8 + length > size:
                raise NotSafetensors(f"header length {length} does not fit the file ({size} bytes): truncated or not safetensors")
            raw = handle.read(length)
    except FileNotFoundError:
        raise NotSafetensors("file not found") from None
    except IsADirectoryError:
        raise NotSafetensors("is a folder, not a file") from None
    except PermissionError:
        raise NotSafetensors("cannot be read (permission denied)") from None
    tensors, metadata, offsets = parse_header(raw, size)
    return Safetensors(path=path, size=size, header_bytes=8 + length, tensors=tensors, metadata=metadata, offsets=offsets)


def parse_header(raw: bytes, size: int) -> tuple[dict[str, tuple[str, list[int]]], dict[str, str], dict[str, tuple[int, int]]]:
    """Tensors, metadata and byte ranges of the JSON header ``raw`` of a ``size``-byte file, checked
    against that file's data section; NotSafetensors saying what is wrong otherwise."""
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NotSafetensors(f"header is not JSON ({error})") from None
    except RecursionError:
        # a real header nests three levels ({name: {"shape": [...]}}); json's decoder gives up near 1000
        raise NotSafetensors(f"header JSON ({len(raw)} bytes) is nested too deeply to be a safetensors header "
                             "(a real one nests 3 levels): not safetensors") from None
    if not isinstance(header, dict):
        raise NotSafetensors("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise NotSafetensors("__metadata__ must map strings to strings")
    data_size = size - 8 - len(raw)
    tensors: dict[str, tuple[str, list[int]]] = {}
    offsets: dict[str, tuple[int, int]] = {}
    for name, info in header.items():
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise NotSafetensors(f"tensor {name!r}: malformed entry") from None
        if dtype not in DTYPE_BYTES or not isinstance(shape, list) or not all(
                type(d) is int and d >= 0 for d in shape):
            raise NotSafetensors(f"tensor {name!r}: bad dtype or shape ({dtype}, {shape})")
        if not (type(start) is int and type(end) is int and 0 <= start <= end <= data_size):
            raise NotSafetensors(f"tensor {name!r}: bytes {start}..{end} outside the data section ({data_size} bytes): truncated")
        if end - start != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise NotSafetensors(f"tensor {name!r}: {end - start} bytes for {dtype}{shape}")
        tensors[name] = (dtype, shape)
        offsets[name] = (start, end)
    position = 0
    for name, (start, end) in sorted(offsets.items(), key=lambda item: item[1]):
        if start < position:
            raise NotSafetensors(f"tensor data has gaps or overlaps: tensor {name!r} at bytes {start}..{end} overlaps the one before it")
        if start > position:
            raise NotSafetensors(f"tensor data has gaps or overlaps: bytes {position}..{start} before tensor {name!r} belong to no tensor")
        position = end
    if position != data_size:
        raise NotSafetensors(f"data section is {data_size} bytes but the tensors cover {position}")
    return tensors, metadata, offsets


def data_sha256(info: Safetensors, chunk: int = CHUNK) -> str:
    """sha256 of every byte after the 8-byte length and the JSON header (ModelSpec hash_sha256
    without its 0x, sd-scripts' sshs_model_hash): unchanged by any header rewrite."""
    digest = hashlib.sha256()
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    with open(info.path, "rb", buffering=0) as handle:
        handle.seek(info.header_bytes)
        with contextlib.suppress(AttributeError, OSError):
            os.posix_fadvise(handle.fileno(), info.header_bytes, 0, os.POSIX_FADV_SEQUENTIAL)
        while True:
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
    return digest.hexdigest()


def read_tensor_bytes(handle, info: Safetensors, name: str) -> bytes:
    """One tensor's raw bytes from an open file of ``info`` (one tensor in memory, not the model)."""
    start, end = info.offsets[name]
    handle.seek(info.header_bytes + start)
    data = handle.read(end - start)
    if len(data) != end - start:
        raise NotSafetensors(f"tensor {name!r}: file ended inside its bytes (changed while being read?)")
    return data


def padded_header(json_bytes: bytes, length: int) -> bytes:
    """8-byte length + the JSON padded with spaces to ``length`` bytes (the format allows it)."""
    return struct.pack("<Q", length) + json_bytes + b" " * (length - len(json_bytes))


def write_header(info: Safetensors, metadata: dict[str, str], out: Path | None = None) -> str:
    """Give the file ``metadata``; the tensor bytes are never changed.

    ``out`` None: rewrite ``info.path``; when the new header fits in the old one's space it is
    written in place (one pwrite, padded with spaces), else the data section is streamed by the
    kernel into a temp file beside it, which then replaces it. ``out`` given: a copy there (atomic),
    the source untouched. Returns "in place" or "copied".
    """
    new_json = info.header_json(metadata)
    old_length = info.header_bytes - 8
    if out is None and len(new_json) <= old_length:
        header = padded_header(new_json, old_length)
        undo = undo_path(info.path)
        fd = os.open(info.path, os.O_RDWR)
        try:
            _check_unchanged(fd, info)
            old = os.pread(fd, info.header_bytes, 0)
            if old == header:
                return "in place"  # nothing to change: the file is not even written
            # An SDXL header is ~200 KB: a crash or power cut inside the pwrite could leave it torn and
            # the whole model unreadable. The old header goes beside the file first (temp + rename), with
            # the new one's sha256, so a leftover tells a finished write from a torn one (interrupted_write).
            from swimlatent_wrap.atomic import write_bytes

            write_bytes(undo, undo_record(old, header))
            os.pwrite(fd, header, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        undo.unlink(missing_ok=True)
        return "in place"
    # MODEL may be a symlink (e.g. into a download cache): rewrite the file it points to, beside it,
    # rather than replacing the link with a stamped copy and leaving the real file as it was
    target = Path(out) if out is not None else Path(os.path.realpath(info.path))
    length = len(new_json) if len(new_json) <= old_length else _grown_length(len(new_json))
    if out is not None and len(new_json) <= old_length:
        length = old_length  # a copy keeps the source's layout when it fits
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb", buffering=0) as dest, open(info.path, "rb", buffering=0) as source:
            _check_unchanged(source.fileno(), info)
            dest.write(padded_header(new_json, length))
            copy_range(source.fileno(), dest.fileno(), info.header_bytes, info.data_bytes)
            os.fsync(dest.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, info.path.stat().st_mode & 0o777)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return "copied"


def undo_path(path: Path) -> Path:
    """Where an in-place header write keeps the old header until the new one is on disk."""
    path = Path(os.path.realpath(path))  # beside the real file, whichever link reached it
    return path.with_name(f".{path.name}.stamp-undo")


def undo_record(old: bytes, new: bytes) -> bytes:
    """What an in-place write keeps beside the file while it writes: the old header (8-byte length and
    JSON, as on disk), then the 32-byte sha256 of the new header it is about to write."""
    return old + hashlib.sha256(new).digest()


# What a leftover undo file says about the write that left it (Interrupted.state).
NOT_STARTED = "not started"  # the header is still the old one: the write never began
WRITTEN = "written"  # the new header is on disk whole: only the undo file's removal was missed
TORN = "torn"  # the header is neither: the write was cut off inside the pwrite
FOREIGN = "foreign"  # the undo file does not fit this file (another file's, or the file changed since)


@dataclass(frozen=True)
class Interrupted:
    """An in-place header write of a file that never removed its undo file, and how far it got."""

    undo: Path
    state: str
    old_header: bytes = field(default=b"", repr=False)

    def warning(self, path: Path) -> str:
        """One line for `inspect`: what the header on disk is, and what to do."""
        name = self.undo.name
        if self.state == WRITTEN:
            return (f"{path}: an in-place stamp was interrupted after writing its new header (shown here) but before "
                    f"removing {name}; run `swimlatent stamp` on the file again to finish it (it keeps this header)")
        if self.state == NOT_STARTED:
            return (f"{path}: an in-place stamp was interrupted before writing its new header: this header is "
                    f"unchanged; run `swimlatent stamp` on the file again (it removes the leftover {name})")
        if self.state == TORN:
            return (f"{path}: an interrupted in-place stamp left the header partly written (the old one is kept in "
                    f"{name}); run `swimlatent stamp` on the file again to put the old header back")
        return (f"{path}: {name} beside it (left by an interrupted in-place stamp) does not match this file; "
                "if the file reads correctly, that leftover can be deleted")

    def done(self, path: Path) -> str:
        """One line for `stamp`, once recover_interrupted_write has dealt with it."""
        if self.state == WRITTEN:
            return f"an interrupted stamp of {path} had finished writing its new header: kept it, removed {self.undo.name}"
        if self.state == NOT_STARTED:
            return f"an interrupted stamp of {path} had not changed the header: removed the leftover {self.undo.name}"
        return f"restored the header of {path} that an interrupted stamp had left half-written"


def interrupted_write(path: Path) -> Interrupted | None:
    """None when no in-place write of ``path`` left its undo file, else how far that write got.
    Reads only; recover_interrupted_write acts on it."""
    undo = undo_path(path)
    try:
        saved = undo.read_bytes()
    except FileNotFoundError:
        return None
    try:
        with open(path, "rb") as handle:
            return _judge(undo, saved, handle.fileno())
    except (FileNotFoundError, IsADirectoryError):
        return Interrupted(undo, FOREIGN)


def _judge(undo: Path, saved: bytes, fd: int) -> Interrupted:
    length = struct.unpack("<Q", saved[:8])[0] if len(saved) >= 8 else -1
    old_size = 8 + length
    if len(saved) == old_size + 32:
        old, digest = saved[:old_size], saved[old_size:]
    elif len(saved) == old_size:
        old, digest = saved, None  # written before the record held the new header's sha256
    else:
        return Interrupted(undo, FOREIGN)
    size = os.fstat(fd).st_size
    # the in-place write keeps the header length, so a torn write leaves these 8 bytes as they were
    current = os.pread(fd, old_size, 0)
    if len(current) != old_size or current[:8] != old[:8]:
        return Interrupted(undo, FOREIGN)
    try:
        old_tensors, _, old_offsets = parse_header(old[8:], size)  # it must describe this file's data section
    except NotSafetensors:
        return Interrupted(undo, FOREIGN)
    if current == old:
        return Interrupted(undo, NOT_STARTED, old)
    if digest is not None:
        return Interrupted(undo, WRITTEN if hashlib.sha256(current).digest() == digest else TORN, old)
    try:  # no sha256 to compare: the new header is whole when it reads, with the same tensors
        tensors, _, offsets = parse_header(current[8:], size)
        whole = tensors == old_tensors and offsets == old_offsets
    except NotSafetensors:
        whole = False
    return Interrupted(undo, WRITTEN if whole else TORN, old)


def recover_interrupted_write(path: Path) -> Interrupted | None:
    """Finish what an interrupted in-place header write of ``path`` left: a whole new header is kept,
    an untouched one too, a torn one gets the old header back (it still describes the data section,
    which an in-place write never touches); then the undo file goes. None when there was nothing to do;
    NotSafetensors when the undo file does not fit the file (nothing is written then)."""
    undo = undo_path(path)
    try:
        saved = undo.read_bytes()
    except FileNotFoundError:
        return None
    fd = os.open(path, os.O_RDWR)
    try:
        found = _judge(undo, saved, fd)
        if found.state == FOREIGN:
            raise NotSafetensors(f"{undo} (the header saved by an interrupted stamp) does not match this file; "
                                 "if the file reads correctly, that leftover can be deleted")
        if found.state == TORN:
            os.pwrite(fd, found.old_header, 0)
            os.fsync(fd)
    finally:
        os.close(fd)
    undo.unlink()
    return found


def _grown_length(json_length: int) -> int:
    """A header length with room to spare, ending on a HEADER_ALIGN boundary (8 + length)."""
    total = 8 + json_length
    total = -(-total // HEADER_ALIGN) * HEADER_ALIGN
    return total - 8


def _check_unchanged(fd: int, info: Safetensors) -> None:
    if os.fstat(fd).st_size != info.size or os.pread(fd, 8, 0) != struct.pack("<Q", info.header_bytes - 8):
        raise NotSafetensors("the file changed since its header was read; nothing was written")


def copy_range(src: int, dst: int, offset: int, count: int) -> None:
    """Copy ``count`` bytes of ``src`` from ``offset`` to ``dst``'s current position, in the kernel
    (copy_file_range, then sendfile), falling back to a buffered copy."""
    out_offset = os.lseek(dst, 0, os.SEEK_CUR)
    done = 0
    if hasattr(os, "copy_file_range"):
        try:
            while done < count:
                n = os.copy_file_range(src, dst, min(count - done, 1 << 30), offset + done, out_offset + done)
                if n == 0:
                    break
                done += n
        except OSError:
            pass  # e.g. EXDEV on old kernels, ENOSYS, EINVAL on some filesystems: try the next way
    if done < count and hasattr(os, "sendfile"):
        os.lseek(dst, out_offset + done, os.SEEK_SET)
        try:
            while done < count:
                n = os.sendfile(dst, src, offset + done, min(count - done, 1 << 30))
                if n == 0:
                    break
                done += n
        except OSError:
            pass
    if done < count:
        os.lseek(dst, out_offset + done, os.SEEK_SET)
        os.lseek(src, offset + done, os.SEEK_SET)
        with open(src, "rb", closefd=False) as source, open(dst, "wb", closefd=False) as dest:
            shutil.copyfileobj(_Limited(source, count - done), dest, CHUNK)
        done = count
    os.lseek(dst, out_offset + count, os.SEEK_SET)
    if done != count:
        raise OSError(f"copied {done} of {count} bytes")


class _Limited:
    def __init__(self, handle, remaining: int) -> None:
        self.handle, self.remaining = handle, remaining

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        size = self.remaining if size < 0 else min(size, self.remaining)
        data = self.handle.read(size)
        if len(data) < size:
            raise OSError("source file ended early")
        self.remaining -= len(data)
        return data
