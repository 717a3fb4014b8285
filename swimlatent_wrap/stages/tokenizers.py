"""The two CLIP tokenizers of SDXL, in sd-scripts' ``--tokenizer_cache_dir`` (``<workdir>/cache/tokenizers``).

sd-scripts (sdxl_train.py, sdxl_train_network.py, sdxl_gen_img.py) loads
``openai/clip-vit-large-patch14`` and ``laion/CLIP-ViT-bigG-14-laion2B-39B-b160k`` with
``CLIPTokenizer.from_pretrained``: from ``<cache>/<repo id with "/" → "_">`` when that folder exists,
else from the Hub (then it saves them there). Offline, that download stalls the run, and a folder that
exists but is incomplete makes it crash; so the wrapper fills the cache itself, each folder complete or
absent, in one of three ways:

- ``build_from_bpe``: from CLIP's BPE merges file (``bpe_simple_vocab_16e6.txt.gz``, shipped in the
  PyPI package open-clip-torch under ``open_clip/``), building the vocabulary exactly as OpenAI's
  ``simple_tokenizer`` does, written as transformers' ``CLIPTokenizer.save_pretrained`` writes it;
- ``import_folder``: from another machine's copy (a tokenizer cache, or a Hugging Face hub cache);
- ``fetch``: once, from the Hub, with huggingface_hub.

The package never imports transformers: the files are plain JSON and text.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from swimlatent_wrap import atomic
from swimlatent_wrap.errors import UserError


@dataclass(frozen=True)
class Tokenizer:
    repo_id: str
    pad_token: str  # the repo's special_tokens_map.json; sd-scripts then sets tokenizer 2's pad_token_id = 0

    @property
    def folder(self) -> str:
        """sd-scripts' cache folder name (strategy_base._load_tokenizer: ``model_id.replace("/", "_")``)."""
        return self.repo_id.replace("/", "_")


# The single declaration of the tokenizers sd-scripts' SDXL scripts load (strategy_sdxl TOKENIZER1/2_PATH).
TOKENIZERS = (
    Tokenizer("openai/clip-vit-large-patch14", pad_token="<|endoftext|>"),
    Tokenizer("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", pad_token="!"),
)
TOKENIZER_FOLDERS = tuple(t.folder for t in TOKENIZERS)

# What the slow CLIPTokenizer reads. Required: vocab.json + merges.txt (its constructor's arguments) and
# tokenizer_config.json (without it model_max_length is "very large" instead of 77, and sd-scripts
# chunks prompts by model_max_length). special_tokens_map.json is written and copied, but the
# special tokens are in tokenizer_config.json too (transformers ≥ 4.34 writes them there).
REQUIRED_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json")
OPTIONAL_FILES = ("special_tokens_map.json", "added_tokens.json")

VOCAB_SIZE = 49408
MERGES = 49152 - 256 - 2  # simple_tokenizer: merges[1:49152-256-2+1]
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 77
BPE_FILE_NAME = "bpe_simple_vocab_16e6.txt.gz"


def fill_hint(cache: Path) -> str:
    """The three commands that fill ``cache``, naming the workdir when it has the wrapper's layout."""
    workdir = cache.parent.parent if cache.name == "tokenizers" and cache.parent.name == "cache" else None
    cmd = f"swimlatent --workdir {workdir} tokenizers" if workdir else "swimlatent tokenizers"
    return (f"`{cmd}` and one of --fetch (once, online), --from-bpe FILE (open_clip's {BPE_FILE_NAME}) "
            f"or --import DIR (a tokenizer cache from another machine)")


def folder_problem(folder: Path) -> str | None:
    """Why sd-scripts could not load this tokenizer folder, or None. Cheap: reads ~1.5 MB."""
    if not folder.is_dir():
        return "absent"
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        return f"lacks {', '.join(missing)}"
    try:
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        merges = (folder / "merges.txt").read_text(encoding="utf-8").strip().split("\n")[1:]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"unreadable ({type(error).__name__}: {error})"
    if not isinstance(vocab, dict) or len(vocab) != VOCAB_SIZE or vocab.get(BOS) != VOCAB_SIZE - 2 or vocab.get(EOS) != VOCAB_SIZE - 1:
        return f"vocab.json is not CLIP's vocabulary ({VOCAB_SIZE} tokens, {BOS} = {VOCAB_SIZE - 2}, {EOS} = {VOCAB_SIZE - 1})"
    if len(merges) < MERGES:
        return f"merges.txt has {len(merges)} merges, CLIP's has {MERGES}"
    if not isinstance(config, dict) or config.get("model_max_length") != MAX_LENGTH:
        return f"tokenizer_config.json does not say model_max_length = {MAX_LENGTH}"
    return None


def missing(cache: Path) -> list[str]:
    """One phrase per tokenizer folder that sd-scripts could not load from ``cache``."""
    return [f"{t.folder} {problem}" for t in TOKENIZERS if (problem := folder_problem(cache / t.folder))]


def cache_problem(cache: Path) -> str | None:
    """None when both folders are complete; else one sentence: what is missing, and how to fill it."""
    gaps = missing(cache)
    if not gaps:
        return None
    return f"tokenizer cache {cache} is incomplete ({'; '.join(gaps)}); fill it with {fill_hint(cache)}"


def _install(cache: Path, tok: Tokenizer, write: Callable[[Path], None]) -> Path:
    """Fill a temp folder beside the final one with ``write``, check it, then rename it into place.

    sd-scripts loads any folder at the final name, so it only ever holds a complete tokenizer: a
    crash leaves a hidden ``.*.part`` folder, never a half-filled one. An existing folder is moved
    aside first and removed once the new one is in place (it is put back if the rename fails)."""
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / tok.folder
    tmp = cache / f".{tok.folder}.{os.getpid()}.{secrets.token_hex(4)}.part"
    tmp.mkdir()
    old: Path | None = None
    try:
        write(tmp)
        problem = folder_problem(tmp)
        if problem:
            raise UserError(f"{tok.repo_id}: the tokenizer written would not load ({problem}); nothing was placed")
        if final.exists() or final.is_symlink():
            old = tmp.with_suffix(".old")
            os.replace(final, old)
        try:
            os.replace(tmp, final)
        except BaseException:
            if old is not None:
                os.replace(old, final)
                old = None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
    return final


def _todo(cache: Path, force: bool) -> list[Tokenizer]:
    """The tokenizers to write: all with ``force``, else those whose folder is not complete."""
    return [t for t in TOKENIZERS if force or folder_problem(cache / t.folder)]


# ---- from CLIP's BPE merges file ----------------------------------------------------------------

def bytes_to_unicode() -> dict[int, str]:
    """CLIP/GPT-2's reversible byte → printable character table; its order gives the first 256 ids."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def read_merges(bpe: Path) -> list[tuple[str, str]]:
    """The 48 894 merges CLIP uses, from its BPE file (gzip or plain; first line is a header)."""
    try:
        data = bpe.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        lines = data.decode("utf-8").split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise UserError(f"--from-bpe {bpe}: cannot read it ({type(error).__name__}: {error})") from None
    pairs = [line.split() for line in lines[1:MERGES + 1]]
    bad = next((i for i, pair in enumerate(pairs) if len(pair) != 2), None)
    if len(pairs) < MERGES or bad is not None:
        where = f"line {bad + 2} is {lines[bad + 1]!r}" if bad is not None else f"it has {len(pairs)} merge lines"
        raise UserError(f"--from-bpe {bpe}: not CLIP's BPE merges file ({where}; CLIP's has {MERGES} \"a b\" lines "
                        f"after a header: open_clip's {BPE_FILE_NAME})")
    return [(a, b) for a, b in pairs]


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """simple_tokenizer's vocabulary: bytes, bytes + ``</w>``, one token per merge, then BOS, EOS."""
    base = list(bytes_to_unicode().values())
    tokens = base + [b + "</w>" for b in base] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = dict(zip(tokens, range(len(tokens))))
    if len(vocab) != VOCAB_SIZE:
        raise UserError(f"the BPE file's merges give {len(vocab)} distinct tokens, CLIP has {VOCAB_SIZE}: not CLIP's file")
    return vocab


def _added_token(content: str, *, normalized: bool) -> dict[str, Any]:
    return {"content": content, "lstrip": False, "normalized": normalized, "rstrip": False, "single_word": False}


def tokenizer_files(tok: Tokenizer, vocab: dict[str, int], merges: list[tuple[str, str]]) -> dict[str, str]:
    """The four files ``CLIPTokenizer.save_pretrained`` writes (transformers 4.54) for a tokenizer it
    loaded, byte for byte (so a load + save leaves them unchanged); tokenizer_config.json also says
    do_lower_case, as the Hub's copies do. A pad token other than EOS (laion's "!") is an added
    special token with its own vocabulary id, as transformers records it."""
    def dump(data: dict[str, Any]) -> str:
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    specials = {BOS: _added_token(BOS, normalized=True), EOS: _added_token(EOS, normalized=True)}
    decoder = {str(vocab[BOS]): {**specials[BOS], "special": True}, str(vocab[EOS]): {**specials[EOS], "special": True}}
    if tok.pad_token not in specials:
        decoder[str(vocab[tok.pad_token])] = {**_added_token(tok.pad_token, normalized=False), "special": True}
    decoder = dict(sorted(decoder.items(), key=lambda kv: int(kv[0])))
    config = {
        "added_tokens_decoder": decoder, "bos_token": BOS, "clean_up_tokenization_spaces": False, "do_lower_case": True,
        "eos_token": EOS, "errors": "replace", "extra_special_tokens": {}, "model_max_length": MAX_LENGTH,
        "pad_token": tok.pad_token, "tokenizer_class": "CLIPTokenizer", "unk_token": EOS,
    }
    special_map = {"bos_token": specials[BOS], "eos_token": specials[EOS], "pad_token": specials.get(tok.pad_token) or _added_token(tok.pad_token, normalized=False),
                   "unk_token": specials[EOS]}
    return {
        "vocab.json": dump(vocab),
        "merges.txt": "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
        "tokenizer_config.json": dump(config),
        "special_tokens_map.json": dump(special_map),
    }


def build_from_bpe(bpe: Path, cache: Path, *, force: bool = False) -> list[Path]:
    """Write both tokenizer folders from CLIP's BPE file; complete folders are kept unless ``force``.
    Returns the folders written."""
    todo = _todo(cache, force)
    if not todo:
        return []
    merges = read_merges(bpe)
    vocab = build_vocab(merges)
    written = []
    for tok in todo:
        files = tokenizer_files(tok, vocab, merges)

        def write(tmp: Path, files: dict[str, str] = files) -> None:
            for name, text in files.items():
                atomic.write_text(tmp / name, text)

        written.append(_install(cache, tok, write))
    return written


# ---- from another machine ---------------------------------------------------------------------

def _candidates(src: Path, tok: Tokenizer) -> list[Path]:
    """Where a copy of ``tok`` may be under ``src``: ``src/<folder>`` (a tokenizer cache), ``src``
    itself (that folder), or a Hugging Face hub cache's snapshots (``src[/hub]/models--<owner>--<name>/
    snapshots/<rev>``, the one refs/main names first)."""
    found = [src / tok.folder]
    if src.name == tok.folder:
        found.append(src)
    for hub in (src, src / "hub"):
        repo = hub / ("models--" + tok.repo_id.replace("/", "--"))
        snapshots = sorted((repo / "snapshots").glob("*")) if (repo / "snapshots").is_dir() else []
        try:
            main = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
        except OSError:
            main = ""
        found += sorted(snapshots, key=lambda p: p.name != main)
    return found


def import_folder(src: Path, cache: Path, *, force: bool = False) -> list[Path]:
    """Copy the tokenizers from ``src`` (another machine's ``<workdir>/cache/tokenizers``, or a
    Hugging Face hub cache such as ``~/.cache/huggingface/hub``); every source is validated before
    anything is copied, and only the tokenizer files are copied (a hub snapshot may hold weights)."""
    if not src.is_dir():
        raise UserError(f"--import {src}: no such folder (give a tokenizer cache holding {' and '.join(TOKENIZER_FOLDERS)}, "
                        f"or a Hugging Face hub cache)")
    todo = _todo(cache, force)
    sources: dict[Tokenizer, Path] = {}
    for tok in todo:
        candidates = _candidates(src, tok)
        good = next((c for c in candidates if not folder_problem(c)), None)
        if good is None:
            seen = next(((c, p) for c in candidates if (p := folder_problem(c)) != "absent"), None)
            why = f"{seen[0]} {seen[1]}" if seen else f"neither {src / tok.folder} nor a hub snapshot models--{tok.repo_id.replace('/', '--')}"
            raise UserError(f"--import {src}: no complete {tok.repo_id} tokenizer there ({why}); nothing was copied")
        sources[tok] = good
    written = []
    for tok, folder in sources.items():
        def write(tmp: Path, folder: Path = folder) -> None:
            for name in REQUIRED_FILES + OPTIONAL_FILES:
                if (folder / name).is_file():  # hub snapshots hold symlinks to blobs: copy the content
                    atomic.write_bytes(tmp / name, (folder / name).read_bytes())

        written.append(_install(cache, tok, write))
    return written


# ---- from the Hub -----------------------------------------------------------------------------

def fetch(cache: Path, *, force: bool = False) -> list[Path]:
    """Download the tokenizer files of both repos with huggingface_hub (which honours HF_ENDPOINT,
    HF_HUB_OFFLINE, HF_HOME and HF_TOKEN itself; with HF_HUB_OFFLINE its own cache still serves)."""
    todo = _todo(cache, force)
    if not todo:
        return []
    offline_fix = (f"offline, fill it with `swimlatent tokenizers --from-bpe FILE` (open_clip's {BPE_FILE_NAME}) "
                   f"or `swimlatent tokenizers --import DIR` (a tokenizer cache from another machine)")
    try:
        from huggingface_hub import errors as hf_errors
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise UserError(f"huggingface_hub is not installed (`pip install 'swimlatent[train]'`); {offline_fix}") from None
    from swimlatent_wrap.hub_access import gated_hint

    written = []
    for tok in todo:
        def write(tmp: Path, tok: Tokenizer = tok) -> None:
            for name in REQUIRED_FILES + OPTIONAL_FILES[:1]:
                try:
                    path = hf_hub_download(tok.repo_id, name)
                except hf_errors.GatedRepoError:  # before RepositoryNotFoundError, its base class
                    raise UserError(f"cannot fetch {name} of {tok.repo_id}: {gated_hint(tok.repo_id)}") from None
                except hf_errors.EntryNotFoundError as error:
                    if not isinstance(error, hf_errors.LocalEntryNotFoundError) and name not in REQUIRED_FILES:
                        continue  # the repo has no such optional file
                    raise _fetch_error(name, tok.repo_id, error, offline_fix) from None
                except Exception as error:  # offline mode, DNS, refused, HTTP errors: one line for all
                    raise _fetch_error(name, tok.repo_id, error, offline_fix) from None
                atomic.write_bytes(tmp / name, Path(path).read_bytes())

        written.append(_install(cache, tok, write))
    return written


def _fetch_error(name: str, repo_id: str, error: Exception, offline_fix: str) -> UserError:
    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") else ""
    detail = (str(error).strip().splitlines() or ["no detail"])[0]
    return UserError(f"cannot fetch {name} of {repo_id} from the Hugging Face Hub{offline} "
                     f"({type(error).__name__}: {detail}); {offline_fix}")
