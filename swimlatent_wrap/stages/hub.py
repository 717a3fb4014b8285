"""`hf:<owner>/<repo>/<file>` model references: fetched once into `models/hub/<owner>/<repo>/<file>`
from the Hugging Face Hub (progress bar), and checked against the sha256 the Hub publishes for the
file (its LFS object id; the git blob id for a small non-LFS file). The check is remembered beside
the file (``<file>.verified.json``: size, mtime, sha256), so later runs need neither the network
nor a re-hash.

The download goes to ``<file>.part`` beside the target and resumes from its bytes with an HTTP
Range request, in the same run (huggingface_hub's own retries after a dropped connection) and in a
later one: huggingface_hub 2.x deletes its partial file when its retries give up (a cut followed by
an outage), which would restart a 6.9 GB download from byte 0, so the file handle is ours.

huggingface_hub reads HF_TOKEN (and HF_ENDPOINT, HF_HUB_OFFLINE) itself; the token is never passed
through us. Errors are told apart by huggingface_hub's own exception types.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from swimlatent_wrap import atomic
from swimlatent_wrap.errors import UserError
from swimlatent_wrap.hub_access import endpoint, gated_hint
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


class HubGated(HubUnreachable):
    """The repo is gated and no token of an account that accepted its licence was given."""


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


def _size(count: int) -> str:
    return f"{count / 1e9:.2f} GB" if count >= 1e9 else f"{count / 1e6:.1f} MB"


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def remote_file(repo_id: str, filename: str) -> RemoteFile:
    """The Hub's record of the file (size, sha256 of its LFS object or git blob id); quick, no download."""
    ref = f"hf:{repo_id}/{filename}"
    hub = _import_hub()
    errors = importlib.import_module("huggingface_hub.errors")
    try:
        infos = hub.HfApi().get_paths_info(repo_id, [filename])
        if any(getattr(i, "path", None) == filename for i in infos):
            # a gated repo's metadata is public, its files are not: ask for the file itself (HEAD)
            hub.get_hf_file_metadata(hub.hf_hub_url(repo_id, filename))
    except errors.GatedRepoError:  # before RepositoryNotFoundError, its base class
        raise HubGated(f"{ref}: {gated_hint(repo_id)}") from None
    except errors.RepositoryNotFoundError:
        raise HubUnreachable(_no_repo(ref, repo_id)) from None
    except errors.OfflineModeIsEnabled:
        raise HubUnreachable(f"{ref}: cannot reach the Hugging Face Hub (OfflineModeIsEnabled: HF_HUB_OFFLINE is set)") from None
    except errors.HfHubHTTPError as error:
        raise HubUnreachable(f"{ref}: the Hugging Face Hub answered {_status(error)}; try again later") from None
    except Exception as error:  # DNS, refused, timeouts: the HTTP client's own transport errors
        raise HubUnreachable(f"{ref}: cannot reach the Hugging Face Hub at {endpoint()} "
                             f"({type(error).__name__}: {_first_line(error)})") from None
    info: RemoteFile | None = next((i for i in infos if getattr(i, "path", None) == filename and hasattr(i, "blob_id")), None)
    if info is None:
        raise UserError(f"{ref}: no file {filename!r} in the Hub repo {repo_id}")
    return info


def _no_repo(ref: str, repo_id: str) -> str:
    return f"{ref}: the Hub has no repo {repo_id} (or it is private: set HF_TOKEN to a token that may read it)"


def _status(error: BaseException) -> str:
    response = getattr(error, "response", None)
    return str(getattr(response, "status_code", "an error"))


def part_file(target: Path) -> Path:
    """Where the bytes of an unfinished download of ``target`` are kept."""
    return target.with_name(target.name + ".part")


RETRIES = 5  # dropped connections resumed within one run (the count restarts whenever bytes arrive)


def _stream(url: str, headers: dict[str, str], out: Any, have: int, size: int, name: str) -> None:
    """GET ``url`` into ``out`` (already holding ``have`` bytes) with ``Range: bytes=<have>-``, resuming
    after a dropped connection up to RETRIES times in a row; an HTTP error answer ends it at once.
    Every request starts at the Hub's resolve URL, so each resume gets a freshly signed CDN redirect
    (both HTTP clients drop the token on a redirect to another host).
    Through huggingface_hub's own HTTP session: httpx from huggingface_hub 1.0 on, requests before
    (sd-scripts pins huggingface-hub 0.34, and `make setup` installs it)."""
    import time

    utils = importlib.import_module("huggingface_hub.utils")
    constants = importlib.import_module("huggingface_hub.constants")
    session = utils.get_session()
    client = importlib.import_module(type(session).__module__.split(".")[0])  # httpx (httpx2 in 2.x), or requests
    httpx = client.__name__ != "requests"  # requests.Session has a `stream` attribute too (a setting)
    if httpx:
        broken: tuple[type[BaseException], ...] = (client.TransportError, client.StreamError)
    else:
        broken = (client.exceptions.ConnectionError, client.exceptions.Timeout, client.exceptions.ChunkedEncodingError)
    tries = RETRIES
    with utils.tqdm(desc=name, total=size, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                    file=sys.stderr, disable=None if sys.stderr.isatty() else False) as progress:
        while have < size:
            request = dict(headers, **({"Range": f"bytes={have}-"} if have else {}))
            try:
                if httpx:
                    opened = session.stream("GET", url, headers=request, follow_redirects=True,
                                            timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT)
                else:
                    opened = session.get(url, headers=request, stream=True, allow_redirects=True,
                                         timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT)
                with opened as response:
                    utils.hf_raise_for_status(response)
                    if have and response.status_code != 206:  # the server ignored the Range: start over
                        out.seek(0)
                        out.truncate()
                        progress.update(-have)
                        have = 0
                    chunks = response.iter_bytes() if httpx else response.iter_content(1 << 16)
                    for chunk in chunks:  # as they arrive: a cut loses (nearly) none
                        out.write(chunk)
                        out.flush()  # on disk as received: a killed run keeps them too
                        have += len(chunk)
                        progress.update(len(chunk))
                        tries = RETRIES
            except broken as error:
                out.flush()
                if tries <= 0 or have >= size:
                    raise
                tries -= 1
                print(f"swimlatent: {name}: connection lost at {have} of {size} bytes ({type(error).__name__}); "
                      f"resuming", file=sys.stderr)
                time.sleep(1)
                continue
            if have < size:  # a body that ended early without an error
                raise OSError(f"the Hub sent {have} of {size} bytes")
    if have != size:
        raise OSError(f"the Hub sent {have} bytes, more than the {size} it announced")


def _download(hub: ModuleType, ref: str, repo_id: str, filename: str, target: Path, size: int) -> None:
    """The file into ``target``, through ``<target>.part`` resumed from its bytes (Range)."""
    errors = importlib.import_module("huggingface_hub.errors")
    part = part_file(target)
    if target.is_file() and not part.exists() and target.stat().st_size < size:
        os.replace(target, part)  # a short file there (an older interrupted copy): resume it
    have = part.stat().st_size if part.is_file() else 0
    if have > size:
        part.unlink()
        have = 0
    try:
        url = hub.hf_hub_url(repo_id, filename)
        headers = importlib.import_module("huggingface_hub.utils").build_hf_headers()
        hub.get_hf_file_metadata(url, headers=headers)  # a gated or missing file is told apart before any byte
        if have:
            print(f"swimlatent: resuming {ref} at {_size(have)} of {_size(size)} (from {part})", file=sys.stderr)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "r+b" if have else "wb") as out:
            out.seek(have)
            _stream(url, headers, out, have, size, filename)
    except errors.GatedRepoError:
        raise UserError(f"{ref}: {gated_hint(repo_id)}") from None
    except errors.RepositoryNotFoundError:
        raise UserError(_no_repo(ref, repo_id)) from None
    except errors.EntryNotFoundError:
        raise UserError(f"{ref}: no file {filename!r} in the Hub repo {repo_id}") from None
    except errors.OfflineModeIsEnabled:
        raise UserError(f"{ref}: not downloaded: HF_HUB_OFFLINE is set") from None
    except Exception as error:  # HfHubHTTPError (an outage's 5xx), a broken connection, a short body
        kept = part.stat().st_size if part.is_file() else 0
        what = (f"the Hub answered {_status(error)}" if isinstance(error, errors.HfHubHTTPError)
                else f"{type(error).__name__}: {_first_line(error)}")
        raise UserError(f"{ref}: download interrupted ({what}); {_size(kept)} of {_size(size)} kept in "
                        f"{part}: run again to resume it") from None
    os.replace(part, target)


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
            if isinstance(error, HubGated):
                raise UserError(error.lines[0]) from None
            raise UserError(f"{error.lines[0]}; and it is not in {target}: fetch it once while online, put the file "
                            f"there yourself, or set the recipe's model to a local path") from None
    info = remote

    if not target.is_file() or target.stat().st_size != info.size:
        print(f"swimlatent: fetching {ref} ({_size(info.size)}) into {target.parent}", file=sys.stderr)
        _download(_import_hub(), ref, repo_id, filename, target, info.size)

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
