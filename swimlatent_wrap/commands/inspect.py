"""`swimlatent inspect MODEL [--json] [--verify]`: a .safetensors file's metadata, tensor count,
dtypes and size, read from the header only; ``--verify`` recomputes ModelSpec's hash_sha256.
Warnings (an interrupted in-place stamp's leftover, no tensors) go to stderr, one line each, and
into the JSON's ``warnings``."""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

from swimlatent_wrap.errors import UserError


NO_TENSORS = "holds no tensors, so it is not a model (`swimlatent stamp` refuses it)"


def summary(path: Path) -> dict:
    from swimlatent_wrap.modelspec import safetensors_file as st
    from swimlatent_wrap.modelspec.spec import read_model

    info = read_model(path)
    dtypes = collections.Counter(dtype for dtype, _ in info.tensors.values())
    warnings = []
    try:
        interrupted = st.interrupted_write(path)
    except OSError:
        interrupted = None  # an unreadable leftover: the next stamp says what is wrong with it
    if interrupted is not None:
        warnings.append(interrupted.warning(path))
    if not info.tensors:
        warnings.append(f"{path}: {NO_TENSORS}")
    return {
        "file": str(info.path),
        "size_bytes": info.size,
        "header_bytes": info.header_bytes,
        "tensors": len(info.tensors),
        "dtypes": dict(sorted(dtypes.items())),
        "metadata": dict(sorted(info.metadata.items())),
        "warnings": warnings,
        "_info": info,
    }


def run(args) -> int:
    from swimlatent_wrap.modelspec import safetensors_file as st

    data = summary(Path(args.model).expanduser())
    info = data.pop("_info")
    for line in data["warnings"]:
        print(f"warning: {line}", file=sys.stderr)
    verified = None
    if args.verify:
        recorded = info.metadata.get("modelspec.hash_sha256")
        if not recorded:
            raise UserError(f"{info.path}: no modelspec.hash_sha256 to verify (stamp it with `swimlatent stamp`)")
        actual = "0x" + st.data_sha256(info)
        if recorded.lower() != actual:
            raise UserError(f"{info.path}: modelspec.hash_sha256 is {recorded} but the tensor data hashes to {actual}")
        verified = actual
        data["hash_verified"] = True
    if args.json:
        json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    _print_table(data)
    if verified:
        print(f"hash_sha256 verified: {verified}")
    return 0


def _short(value: str, limit: int = 160) -> str:
    if value.startswith("data:image/"):
        return f"{value[:30]}… ({len(value)} characters)"
    return value if len(value) <= limit else value[:limit] + f"… ({len(value)} characters)"


def _print_table(data: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    dtypes = ", ".join(f"{name} {count}" for name, count in data["dtypes"].items()) or "none"
    console.print(f"[bold]{data['file']}[/bold]", markup=True, highlight=False)
    tensors = f"{data['tensors']} tensors ({dtypes})" if data["tensors"] else NO_TENSORS
    console.print(f"{data['size_bytes']:,} bytes ({data['size_bytes'] / 2**30:.2f} GiB), header "
                  f"{data['header_bytes']:,} bytes; {tensors}", highlight=False)
    table = Table(show_header=True, header_style="bold")
    table.add_column("key", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in data["metadata"].items():
        table.add_row(key, _short(value))
    if not data["metadata"]:
        table.add_row("(no metadata)", "")
    console.print(table)
