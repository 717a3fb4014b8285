"""Where the tagger's two files are: a local folder, or a Hugging Face repo fetched into the HF cache.

A WD14 tagger is `model.onnx` + `selected_tags.csv` (SmilingWolf's repos, v2 and v3 alike).
A model spec is a folder holding both, a path to the `.onnx` file with the CSV beside it, or a
repo id such as ``SmilingWolf/wd-v1-4-swinv2-tagger-v2``, fetched with huggingface_hub into its
own cache (HF_HOME / HF_HUB_CACHE; offline runs reuse it, HF_HUB_OFFLINE=1 forbids the network).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from swimlatent_wrap.errors import UserError

MODEL_FILE = "model.onnx"
TAGS_FILE = "selected_tags.csv"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelFiles:
    spec: str  # as the user wrote it: shown in messages and recorded in the manifest
    onnx: Path
    tags: Path


def local_model(spec: str, base: Path | None = None) -> ModelFiles | None:
    """The model's files when ``spec`` names something on disk (relative to ``base``, then to the
    current folder); None when it can only be a repo id. Cheap: no download, no model loading."""
    text = spec.strip()
    if not text:
        raise UserError("the tagger model is empty; give a Hugging Face repo id or a folder with model.onnx + selected_tags.csv")
    raw = Path(text).expanduser()
    candidates = [raw] if raw.is_absolute() or base is None else [base / raw, raw]
    found = next((c for c in candidates if c.exists()), None)
    if found is None:
        if _REPO_ID.match(text):
            return None
        raise UserError(f"{text}: no such model folder or file, and not a Hugging Face repo id (owner/name)")
    found = found.resolve()
    folder = found if found.is_dir() else found.parent
    onnx = found if found.is_file() else folder / MODEL_FILE
    tags = folder / TAGS_FILE
    missing = [p.name for p in (onnx, tags) if not p.is_file()]
    if missing:
        raise UserError(f"{folder}: a WD14 tagger folder needs {MODEL_FILE} and {TAGS_FILE}; missing: {', '.join(missing)}")
    return ModelFiles(text, onnx, tags)


OFFLINE_HINT = "offline? put model.onnx and selected_tags.csv in a folder and pass that folder as the model"


def _cached(repo_id: str) -> dict[str, Path] | None:
    """Both files from the Hugging Face cache, without a request (None when either is not cached)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub import errors as hf_errors

    try:
        return {name: Path(hf_hub_download(repo_id=repo_id, filename=name, local_files_only=True))
                for name in (MODEL_FILE, TAGS_FILE)}
    except (hf_errors.LocalEntryNotFoundError, hf_errors.HFValidationError, OSError, ValueError):
        return None


def _unreachable(endpoint: str) -> str | None:
    """Why the Hub cannot be reached at all (its host name does not resolve, or nothing listens at its
    port: connection refused), else None: then huggingface_hub's own retries, meant for passing
    faults, would only add half a minute of noise. Behind a proxy only the name is checked."""
    import os
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    host = parts.hostname
    if not host:
        return None
    try:
        socket.getaddrinfo(host, None)
    except OSError as error:
        return f"{host} cannot be reached ({error.strerror or error})"
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except ConnectionRefusedError as error:
        return f"nothing answers at {host}:{port} ({error.strerror or error})"
    except OSError:
        return None  # a timeout or another fault: huggingface_hub's retries may still get through
    return None


def _reason(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def fetch_model(repo_id: str) -> ModelFiles:
    """The repo's model.onnx and selected_tags.csv: from the Hugging Face cache when both are there
    (no request: the tagger works offline once fetched), else downloaded into it."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub import errors as hf_errors

    paths = _cached(repo_id)
    if paths is not None:
        return ModelFiles(repo_id, paths[MODEL_FILE], paths[TAGS_FILE])
    if constants.HF_HUB_OFFLINE:
        raise UserError(f"the tagger model {repo_id} is not in the Hugging Face cache and HF_HUB_OFFLINE is set", OFFLINE_HINT)
    if (reason := _unreachable(constants.ENDPOINT)) is not None:
        raise UserError(f"cannot get the tagger model {repo_id}: {reason}", OFFLINE_HINT)
    from swimlatent_wrap.hub_access import gated_hint

    paths = {}
    for filename in (MODEL_FILE, TAGS_FILE):
        try:
            paths[filename] = Path(hf_hub_download(repo_id=repo_id, filename=filename))
        except hf_errors.GatedRepoError:  # before RepositoryNotFoundError, its base class
            raise UserError(f"cannot get the tagger model {repo_id}: {gated_hint(repo_id)}") from None
        except hf_errors.RepositoryNotFoundError:
            raise UserError(f"cannot get the tagger model {repo_id}: the Hugging Face Hub has no such repo (or it is "
                            f"private: set HF_TOKEN)", OFFLINE_HINT) from None
        except hf_errors.LocalEntryNotFoundError as error:  # no answer from the Hub, and not in the cache
            raise UserError(f"cannot get {filename} of the tagger model {repo_id}: the Hugging Face Hub did not answer "
                            f"and it is not in the cache ({_reason(error.__cause__ or error)})", OFFLINE_HINT) from None
        except hf_errors.EntryNotFoundError:
            raise UserError(f"the Hugging Face repo {repo_id} has no {filename}: not a WD14 tagger (it needs "
                            f"{MODEL_FILE} and {TAGS_FILE})") from None
        except hf_errors.HfHubHTTPError as error:
            status = getattr(getattr(error, "response", None), "status_code", "an error")
            raise UserError(f"cannot get {filename} of the tagger model {repo_id}: the Hugging Face Hub answered "
                            f"{status} ({_reason(error)})", OFFLINE_HINT) from None
        except (hf_errors.HFValidationError, OSError, ValueError) as error:
            raise UserError(f"cannot get {filename} of the Hugging Face repo {repo_id}: {_reason(error)}", OFFLINE_HINT) from None
    return ModelFiles(repo_id, paths[MODEL_FILE], paths[TAGS_FILE])


def resolve_model(spec: str, base: Path | None = None) -> ModelFiles:
    """A local model when ``spec`` is on disk, otherwise the Hugging Face repo ``spec``."""
    return local_model(spec, base) or fetch_model(spec.strip())
