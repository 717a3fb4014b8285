"""`hf:<owner>/<repo>/<file>` model references: fetched once into `models/hub/<owner>/<repo>/<file>`
with huggingface_hub (progress bar; an interrupted download resumes from its partial file), and
checked against the sha256 the Hub publishes for the file (its LFS object id; the git blob id for a
small non-LFS file). The check is remembered beside the file (``<file>.verified.json``: size,
mtime, sha256), so later runs need neither the network nor a re-hash.

huggingface_hub reads HF_TOKEN itself for gated repos; the token is never passed through us.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from swimlatent_wrap import atomic
from swimlatent_wrap.errors import UserError
from swimlatent_wrap.stages.verify import file_identity, sha256_file
from swimlatent_wrap.workdir import Workdir


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def verified_sha256(path: Path) -> str | None:
    """The sha256 recorded when ``path`` was last verified, if the file has not changed since."""
    try:
        data = json.loads(_marker(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not path.is_file() or data.get("identity") != file_identity(path):
        return None
    sha256: str | None = data.get("sha256")
    return sha256


def _remember(path: Path, repo_id: str, filename: str, sha256: str) -> None:
    atomic.write_text(_marker(path), json.dumps({"repo_id": repo_id, "filename": filename, "sha256": sha256,
                                                 "identity": file_identity(path)}, indent=1) + "\n")


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class HubUnreachable(UserError):
    """The Hub could not be asked about a file (offline, no network, refused)."""


class RemoteFile(Protocol):
    """What the Hub says about a file (huggingface_hub's ``RepoFile``, as far as it is read here)."""

    path: str
    size: int
    blob_id: str  # the git blob id
    lfs: Any  # None for a small non-LFS file, else its LFS record with ``.sha256``


def _import_hub() -> ModuleType:
    """huggingface_hub, an optional dependency imported when needed (as a module: what it answers is Any here)."""
    try:
        import huggingface_hub
    except ImportError:
        raise UserError("huggingface_hub is not installed; `pip install 'swimlatent[train]'` (make setup does it)") from None
    return huggingface_hub


def remote_file(repo_id: str, filename: str) -> RemoteFile:
    """The Hub's record of the file (size, sha256 of its LFS object or git blob id); quick, no download."""
    ref = f"hf:{repo_id}/{filename}"
    hub = _import_hub()
    try:
        infos = hub.HfApi().get_paths_info(repo_id, [filename])
    except Exception as error:  # offline mode, DNS, HTTP 401/404 …: all end the same way for the user
        if type(error).__name__ in ("RepositoryNotFoundError", "GatedRepoError"):
            raise HubUnreachable(f"{ref}: the Hub refuses access to {repo_id} ({type(error).__name__}); for a gated repo "
                                 f"accept its terms on huggingface.co and set HF_TOKEN") from None
        detail = str(error).splitlines()[0] if str(error) else "no detail"
        raise HubUnreachable(f"{ref}: cannot reach the Hugging Face Hub ({type(error).__name__}: {detail})") from None
    info: RemoteFile | None = next((i for i in infos if getattr(i, "path", None) == filename and hasattr(i, "blob_id")), None)
    if info is None:
        raise UserError(f"{ref}: no file {filename!r} in the Hub repo {repo_id}")
    return info


def ensure_hub_file(workdir: Workdir, repo_id: str, filename: str, remote: RemoteFile | None = None,
                    asked: bool = False) -> tuple[Path, str | None]:
    """(local path, sha256 or None when it could not be checked) for a Hub file, fetching it if needed.

    ``remote``: what remote_file() answered; ``asked``: the caller already asked and the Hub did not
    answer (it warned about using a present file unverified).
    """
    ref = f"hf:{repo_id}/{filename}"
    target = workdir.hub_file(repo_id, filename)
    known = verified_sha256(target)
    if known:
        return target, known
    if remote is None and asked and target.is_file():
        return target, None
    if remote is None:
        try:
            remote = remote_file(repo_id, filename)
        except HubUnreachable as error:
            if target.is_file():
                print(f"swimlatent: warning: using {target} unverified: {error.lines[0]}", file=sys.stderr)
                return target, None
            raise UserError(f"{error.lines[0]}; and it is not in {target}: fetch it once while online, put the file "
                            f"there yourself, or set the recipe's model to a local path") from None
    info = remote

    if not target.is_file() or target.stat().st_size != info.size:
        print(f"swimlatent: fetching {ref} ({info.size / 1e9:.2f} GB) into {target.parent}", file=sys.stderr)
        try:
            # local_dir: the file lands at target; a partial download is kept and resumed next time.
            downloaded = Path(_import_hub().hf_hub_download(repo_id, filename, local_dir=workdir.hub_file(repo_id, "")))
        except Exception as error:
            raise UserError(f"{ref}: download failed ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                            f"run again to resume it") from None
        if downloaded.resolve() != target.resolve():
            os.replace(downloaded, target)

    if info.lfs is not None:
        expected, actual = info.lfs.sha256, sha256_file(target)
    else:
        expected, actual = info.blob_id, _git_blob_sha1(target)
    if actual != expected:
        broken = target.with_name(target.name + ".corrupt")
        os.replace(target, broken)
        raise UserError(f"{ref}: checksum mismatch (got {actual}, the Hub says {expected}); moved the file to {broken}; "
                        f"run again to download it afresh")
    sha = actual if info.lfs is not None else sha256_file(target)
    _remember(target, repo_id, filename, sha)
    return target, sha
