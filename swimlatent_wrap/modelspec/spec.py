"""Stability AI ModelSpec metadata (reference/ecosystem.md §E) for a .safetensors file.

    parse_assignments(["key=value", ...]) -> dict    --set values, checked (no paths, no secrets)
    build_metadata(info, ...) -> Stamp               the new __metadata__ and what was dropped
    stamp_file(path, ...) -> StampResult             compute the hash, write the header

Precedence, lowest first: defaults, the value already in the file (``modelspec.*``; not for
``date``, ``architecture`` or ``hash_sha256``), the recipe, ``--set``. Every value is a string;
``hash_sha256`` is always computed from the file (every byte after the header, ``0x`` + hex).
"""

from __future__ import annotations

import datetime
import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.modelspec import safetensors_file as st
from swimlatent_wrap.secrets import looks_like_secret

PREFIX = "modelspec."
SPEC_VERSION = "1.0.1"
BASE_ARCHITECTURE = "stable-diffusion-xl-v1-base"
LORA_PREFIXES = ("lora_unet_", "lora_te")
# The seed's keys, then the ones the release issue adds: always present after a stamp.
REQUIRED = ("sai_model_spec", "architecture", "implementation", "title", "date", "resolution",
            "prediction_type", "hash_sha256")
THUMBNAIL_MAX = 256
# Every key of ModelSpec 1.0.1 (and implementation_version, which sd-scripts writes). `--set` takes
# these; a key of your own is written deliberately as `--set +KEY=VALUE`.
KNOWN_KEYS = ("sai_model_spec", "architecture", "implementation", "implementation_version", "title", "description",
              "author", "date", "hash_sha256", "license", "usage_hint", "thumbnail", "tags", "merged_from",
              "trigger_phrase", "prediction_type", "timestep_range", "encoder_layer", "preprocessor",
              "is_negative_embedding", "unet_dtype", "vae_dtype", "resolution")
CUSTOM = "+"
_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
# An absolute local path inside a value: "/x", "~/x", "C:\x", "\\server", "file:/..." at the start
# of the value or after a separator (so "https://host/x" and "1/2" are not paths).
_ABS_PATH = re.compile(r"""(?:^|[\s"'=,;(\[{])(?:~?/[\w.~-]|[A-Za-z]:[\\/]|\\\\\w)|file:/""", re.IGNORECASE)


@dataclass(frozen=True)
class Stamp:
    metadata: dict[str, str]
    dropped: list[str] = field(default_factory=list)  # existing keys removed (paths, secrets)


@dataclass(frozen=True)
class StampResult:
    path: Path
    how: str  # "in place" or "copied"
    metadata: dict[str, str]
    dropped: list[str]
    header_bytes: int
    recovery: str | None = None  # one line: what was done first about an interrupted in-place stamp


def publish_problem(value: str) -> str | None:
    """Why a value must not go into a published header (None when it may): a secret or a local path."""
    if looks_like_secret(value):
        return "the value looks like a secret (a token or password); it would be published in the file's header"
    if looks_like_path(value):
        return f"{value!r} holds an absolute local path; it would be published in the file's header"
    return None


def date_problem(value: str) -> str | None:
    """ModelSpec dates are ISO-8601: a date, or a date and time (as sd-scripts writes them)."""
    try:
        datetime.datetime.fromisoformat(value)
    except ValueError:
        return f"expected an ISO-8601 date such as 2026-12-02 or 2026-12-02T10:30:00, got {value!r}"
    return None


def looks_like_path(value: str) -> bool:
    if value.startswith("data:"):
        return False  # a data URL's base64 may hold "/9j/..."
    return bool(_ABS_PATH.search(value))


def is_lora(info: st.Safetensors) -> bool:
    return any(name.startswith(LORA_PREFIXES) for name in info.tensors)


def resolution_text(value: object) -> str:
    """A resolution as ModelSpec writes it, WxH, from sd-scripts' int, [w, h] or "w,h"."""
    if isinstance(value, int):
        return f"{value}x{value}"
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return f"{value[0]}x{value[1]}"
    if isinstance(value, str) and value.strip():
        parts = [p.strip() for p in value.replace("x", ",").split(",")]
        return f"{parts[0]}x{parts[-1]}"
    return "1024x1024"


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """``--set KEY=VALUE`` items as a dict; one UserError listing every bad item."""
    values: dict[str, str] = {}
    problems = []
    for item in assignments:
        key, sep, value = item.partition("=")
        key = key.strip()
        custom = key.startswith(CUSTOM)
        key = key.removeprefix(CUSTOM).removeprefix(PREFIX)
        if not sep or not _KEY.match(key):
            problems.append(f"--set {item!r}: expected KEY=VALUE with a ModelSpec key such as title=My Model "
                            "(without the \"modelspec.\" prefix)")
        elif not custom and key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.6)
            problems.append(f"--set {key}: not a ModelSpec key" + (f"; did you mean {close[0]!r}?" if close else "")
                            + f" (write --set {CUSTOM}{key}=… to add a key of your own as modelspec.{key})")
        elif custom and key in KNOWN_KEYS:
            problems.append(f"--set {CUSTOM}{key}: {key} is a ModelSpec key; write --set {key}=… without the {CUSTOM!r}")
        elif key == "date" and value and (problem := date_problem(value)):
            problems.append(f"--set date: {problem}")
        elif key == "hash_sha256":
            problems.append("--set hash_sha256: the hash is computed from the file, it cannot be set")
        elif looks_like_secret(value):
            problems.append(f"--set {key}: the value looks like a secret (a token or password); refusing to "
                            "publish it in the file's header")
        elif key == "thumbnail" and value and not value.startswith("data:image/"):
            try:
                values[key] = thumbnail_data_url(Path(value).expanduser())
            except UserError as error:
                problems.extend(error.lines)
        elif looks_like_path(value):
            problems.append(f"--set {key}: {value!r} holds an absolute local path; refusing to publish it in "
                            "the file's header")
        else:
            values[key] = value
    if problems:
        raise UserError(*problems)
    return values


def thumbnail_data_url(path: Path) -> str:
    """A JPEG data URL of the image, at most THUMBNAIL_MAX pixels a side."""
    import base64
    import io

    from PIL import Image, UnidentifiedImageError

    image: Image.Image
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((THUMBNAIL_MAX, THUMBNAIL_MAX))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=85, optimize=True)
    except FileNotFoundError:
        raise UserError(f"thumbnail {path}: file not found") from None
    except (UnidentifiedImageError, OSError) as error:
        raise UserError(f"thumbnail {path}: not an image Pillow can read ({error})") from None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def build_metadata(info: st.Safetensors, *, data_hash: str, recipe: dict[str, str] | None = None,
                   assignments: dict[str, str] | None = None, strip_paths: bool = True,
                   today: str | None = None) -> Stamp:
    """The header metadata after stamping ``info``'s file (whose data section hashes to ``data_hash``)."""
    recipe = recipe or {}
    assignments = assignments or {}
    kept: dict[str, str] = {}
    dropped: list[str] = []
    for key, value in info.metadata.items():
        if looks_like_secret(value) or (strip_paths and looks_like_path(value)):
            dropped.append(key)
        else:
            kept[key] = value
    existing = {k[len(PREFIX):]: v for k, v in kept.items() if k.startswith(PREFIX)}
    for key in ("date", "architecture", "hash_sha256", "sai_model_spec"):
        existing.pop(key, None)
    architecture = recipe.get("architecture", BASE_ARCHITECTURE)
    if is_lora(info) and not architecture.endswith("/lora"):
        architecture += "/lora"
    spec = {
        "sai_model_spec": SPEC_VERSION,
        "architecture": architecture,
        "implementation": "sgm",
        "title": info.path.stem,
        "date": today or datetime.date.today().isoformat(),
        "resolution": "1024x1024",
        "prediction_type": "epsilon",
    }
    spec.update(existing)
    spec.update({k: v for k, v in recipe.items() if k != "architecture"})
    spec.update(assignments)
    spec["hash_sha256"] = "0x" + data_hash.lower()
    metadata = {k: v for k, v in kept.items() if not k.startswith(PREFIX)}
    metadata.update({PREFIX + k: str(v) for k, v in spec.items() if str(v) != "" or k in REQUIRED})
    return Stamp(metadata=metadata, dropped=sorted(dropped))


def stamp_file(path: Path, *, out: Path | None = None, recipe: dict[str, str] | None = None,
               assignments: dict[str, str] | None = None, strip_paths: bool = True,
               today: str | None = None) -> StampResult:
    """Stamp ``path`` (or a copy at ``out``): header only, tensors never touched."""
    path = Path(path)
    try:
        interrupted = st.recover_interrupted_write(path) if path.is_file() else None
    except st.NotSafetensors as error:
        raise UserError(f"{path}: {error}") from None
    except OSError as error:
        raise UserError(f"{path}: cannot restore the header an interrupted stamp saved: {error.strerror or error}") from None
    info = read_model(path)
    if not info.tensors:
        raise UserError(f"{path}: holds no tensors, so it is not a model; refusing to stamp it as one")
    stamp = build_metadata(info, data_hash=st.data_sha256(info), recipe=recipe, assignments=assignments,
                           strip_paths=strip_paths, today=today)
    if out is not None and os.path.abspath(out) == os.path.abspath(path):
        out = None
    try:
        how = st.write_header(info, stamp.metadata, out=out)
    except st.NotSafetensors as error:
        raise UserError(f"{path}: {error}") from None
    except OSError as error:
        raise UserError(f"cannot write {out or path}: {error.strerror or error}") from None
    written = read_model(Path(out) if out is not None else path)
    return StampResult(path=written.path, how=how, metadata=written.metadata, dropped=stamp.dropped,
                       header_bytes=written.header_bytes,
                       recovery=interrupted.done(path) if interrupted is not None else None)


def read_model(path: Path) -> st.Safetensors:
    """The checked header, or one UserError naming the file and the problem."""
    try:
        return st.read_safetensors(path)
    except st.NotSafetensors as error:
        try:
            interrupted = st.interrupted_write(path)
        except OSError:
            interrupted = None
        if interrupted is not None and interrupted.state == st.TORN:
            raise UserError(interrupted.warning(path)) from None  # that is why it does not read: one line
        lines = [f"{path}: {error}"]
        if interrupted is not None:
            lines.append(interrupted.warning(path))
        raise UserError(*lines) from None
