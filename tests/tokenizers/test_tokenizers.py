"""The CLIP tokenizer cache: built from open_clip's BPE file, imported, fetched from a loopback fake Hub,
checked by preflight, and driven through `swimlatent tokenizers` in a real child process. The contract
test loads the built folders with transformers' CLIPTokenizer (SWIMLATENT_SD_PYTHON) and compares
its ids with a pure-Python implementation of CLIP's tokenizer written here."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import unicodedata
from pathlib import Path
from types import SimpleNamespace

import pytest

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.stages import tokenizers as tk
from swimlatent_wrap.stages.preflight import Preflight, check_tokenizers
from tests.helpers import run_cli
from tests.tokenizers import bpe_file

OPENAI, LAION = tk.TOKENIZER_FOLDERS
# A caption whose CLIP ids are public knowledge (OpenAI's CLIP README example): an anchor that does not
# come from our own build.
PHOTO_OF_A_CAT = [49406, 320, 1125, 539, 320, 2368, 49407]
CAPTIONS = [
    "a photo of a cat",
    "new, newest, masterpiece, best quality, 1girl, solo",
    "Hatsune Miku, twintails, :d, ^_^, looking at viewer, 2024, 3d",
    "pokémon (creature), it's the cat's tail, 0_0, 初音ミク",
    "wow!! so cute!   multiple   spaces\tand a tab",
    ", ".join(["very long caption"] * 40),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A cache built once for the read-only tests."""
    cache = tmp_path_factory.mktemp("built") / "tokenizers"
    assert tk.build_from_bpe(bpe_file(), cache) == [cache / OPENAI, cache / LAION]
    return cache


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


# ---- an independent CLIP tokenizer (no regex module, no ftfy: plain captions need neither) -------

def _kind(char: str) -> str:
    category = unicodedata.category(char)
    return "L" if category[0] == "L" else "N" if category[0] == "N" else "O"


def pre_tokenize(text: str) -> list[str]:
    r"""CLIP's pattern ``<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+``
    as a scanner: a run of letters, a single digit, or a run of other non-space characters."""
    out, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        literal = next((lit for lit in ("<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d")
                        if text.startswith(lit, i)), None)
        if literal:
            out.append(literal)
            i += len(literal)
            continue
        kind, j = _kind(text[i]), i + 1
        while kind != "N" and j < len(text) and not text[j].isspace() and _kind(text[j]) == kind:
            j += 1
        out.append(text[i:j])
        i = j
    return out


def byte_table() -> dict[int, str]:
    """GPT-2/CLIP's byte → character map, written out independently of the package's."""
    printable = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    table = {b: chr(b) for b in printable}
    extra = iter(range(256, 512))
    for b in range(256):
        if b not in table:
            table[b] = chr(next(extra))
    return table


def bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    parts = list(word[:-1]) + [word[-1] + "</w>"]
    while len(parts) > 1:
        best = min(range(len(parts) - 1), key=lambda k: ranks.get((parts[k], parts[k + 1]), 1 << 30))
        pair = (parts[best], parts[best + 1])
        if pair not in ranks:
            break
        merged, k = [], 0
        while k < len(parts):
            if k < len(parts) - 1 and (parts[k], parts[k + 1]) == pair:
                merged.append(parts[k] + parts[k + 1])
                k += 2
            else:
                merged.append(parts[k])
                k += 1
        parts = merged
    return parts


class Reference:
    """CLIP's tokenizer from a folder's vocab.json and merges.txt: lowercase, whitespace cleaning,
    the pattern, the byte encoder, merges by rank. ``specials`` are split out first, as transformers
    does for added special tokens (laion's pad token "!" is one: it becomes id 0)."""

    def __init__(self, folder: Path, specials: dict[str, int]):
        self.vocab = read_json(folder / "vocab.json")
        lines = (folder / "merges.txt").read_text(encoding="utf-8").strip().split("\n")[1:]
        self.ranks = {tuple(line.split()): rank for rank, line in enumerate(lines)}
        self.specials, self.bytes = specials, byte_table()

    def _plain(self, text: str) -> list[int]:
        ids = []
        for piece in pre_tokenize(re.sub(r"\s+", " ", text).strip().lower()):
            ids += [self.vocab[t] for t in bpe("".join(self.bytes[b] for b in piece.encode("utf-8")), self.ranks)]
        return ids

    def ids(self, text: str) -> list[int]:
        out = []
        pattern = "(" + "|".join(map(re.escape, self.specials)) + ")" if self.specials else None
        for chunk in re.split(pattern, text) if pattern else [text]:
            out += [self.specials[chunk]] if chunk in self.specials else self._plain(chunk)
        return [49406, *out, 49407]


# ---- the built files ---------------------------------------------------------------------------

def test_the_built_vocabulary_is_clips(built):
    for folder in (OPENAI, LAION):
        vocab = read_json(built / folder / "vocab.json")
        assert len(vocab) == 49408 == len(set(vocab.values()))
        assert (vocab["<|startoftext|>"], vocab["<|endoftext|>"]) == (49406, 49407)
        assert (vocab["!"], vocab["!</w>"], vocab["in"]) == (0, 256, 512)  # bytes, bytes</w>, first merge
        merges = (built / folder / "merges.txt").read_text(encoding="utf-8").split("\n")
        assert merges[0] == "#version: 0.2" and merges[1] == "i n" and merges[-1] == ""
        assert len(merges) - 2 == 48894
        assert Reference(built / folder, {}).ids("a photo of a cat") == PHOTO_OF_A_CAT


def test_each_folder_has_its_repos_special_tokens(built):
    for folder, pad in ((OPENAI, "<|endoftext|>"), (LAION, "!")):
        config = read_json(built / folder / "tokenizer_config.json")
        special = read_json(built / folder / "special_tokens_map.json")
        assert config["model_max_length"] == 77 and config["do_lower_case"] is True
        assert config["tokenizer_class"] == "CLIPTokenizer"
        assert (config["bos_token"], config["eos_token"], config["unk_token"], config["pad_token"]) == \
               ("<|startoftext|>", "<|endoftext|>", "<|endoftext|>", pad)
        assert {k: v["content"] for k, v in special.items()} == \
               {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": pad}
    assert set(read_json(built / OPENAI / "tokenizer_config.json")["added_tokens_decoder"]) == {"49406", "49407"}
    assert read_json(built / LAION / "tokenizer_config.json")["added_tokens_decoder"]["0"]["content"] == "!"


def test_a_plain_text_bpe_file_builds_the_same_files(built, tmp_path):
    plain = tmp_path / "bpe.txt"
    plain.write_bytes(gzip.decompress(bpe_file().read_bytes()))
    tk.build_from_bpe(plain, tmp_path / "cache")
    for folder in (OPENAI, LAION):
        for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
            assert (tmp_path / "cache" / folder / name).read_bytes() == (built / folder / name).read_bytes()


def test_a_file_that_is_not_clips_bpe_is_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "bpe.txt"
    bad.write_text("#version: 0.2\ni n\nthis line has three\n", encoding="utf-8")
    for path, needle in ((bad, "not CLIP's BPE merges file"), (tmp_path / "absent.gz", "cannot read it")):
        with pytest.raises(UserError) as error:
            tk.build_from_bpe(path, tmp_path / "cache")
        assert len(error.value.lines) == 1 and needle in error.value.lines[0] and str(path) in error.value.lines[0]
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


# ---- completeness and atomicity ----------------------------------------------------------------

def test_cache_problem_names_what_is_missing_and_the_commands(tmp_path):
    cache = tmp_path / "work" / "cache" / "tokenizers"
    problem = tk.cache_problem(cache)
    assert problem and "\n" not in problem
    assert f"{OPENAI} absent" in problem and f"{LAION} absent" in problem
    assert f"swimlatent --workdir {tmp_path / 'work'} tokenizers" in problem
    assert all(option in problem for option in ("--fetch", "--from-bpe FILE", "--import DIR"))
    tk.build_from_bpe(bpe_file(), cache)
    assert tk.cache_problem(cache) is None


def test_an_incomplete_folder_is_reported_and_only_it_is_rebuilt(tmp_path):
    cache = tmp_path / "tokenizers"
    tk.build_from_bpe(bpe_file(), cache)
    (cache / OPENAI / "merges.txt").unlink()
    assert f"{OPENAI} lacks merges.txt" in tk.cache_problem(cache)
    laion_vocab = (cache / LAION / "vocab.json").stat().st_ino
    assert tk.build_from_bpe(bpe_file(), cache) == [cache / OPENAI]
    assert tk.cache_problem(cache) is None and (cache / LAION / "vocab.json").stat().st_ino == laion_vocab
    assert tk.build_from_bpe(bpe_file(), cache) == []  # complete: left alone
    assert tk.build_from_bpe(bpe_file(), cache, force=True) == [cache / OPENAI, cache / LAION]
    assert (cache / LAION / "vocab.json").stat().st_ino != laion_vocab
    assert sorted(p.name for p in cache.iterdir()) == sorted([OPENAI, LAION])  # no temp folder left


@pytest.mark.parametrize("damage, needle", [
    (lambda f: (f / "vocab.json").write_text('{"a": 0}'), "vocab.json is not CLIP's vocabulary"),
    (lambda f: (f / "vocab.json").write_text('{"a": '), "unreadable"),
    (lambda f: (f / "merges.txt").write_text("#version: 0.2\ni n\n"), "merges.txt has 1 merges"),
    (lambda f: (f / "tokenizer_config.json").write_text("{}"), "model_max_length = 77"),
])
def test_a_damaged_file_is_reported(tmp_path, damage, needle):
    cache = tmp_path / "tokenizers"
    tk.build_from_bpe(bpe_file(), cache)
    damage(cache / LAION)
    gap, = tk.missing(cache)
    assert gap.startswith(LAION) and needle in gap


def test_an_interrupted_build_leaves_no_half_filled_folder(tmp_path, monkeypatch):
    cache = tmp_path / "tokenizers"
    (cache / OPENAI).mkdir(parents=True)
    (cache / OPENAI / "vocab.json").write_text("{}")  # incomplete, as a crashed copy would leave it
    real = tk.atomic.write_text

    def failing(path, text):
        if Path(path).name == "merges.txt":
            raise OSError(28, "No space left on device")
        real(path, text)

    monkeypatch.setattr(tk.atomic, "write_text", failing)
    with pytest.raises(OSError):
        tk.build_from_bpe(bpe_file(), cache)
    assert sorted(p.name for p in cache.iterdir()) == [OPENAI]  # no temp folder, no half-built laion
    assert [p.name for p in (cache / OPENAI).iterdir()] == ["vocab.json"]  # the old folder, untouched


# ---- import ------------------------------------------------------------------------------------

def hub_cache(root: Path, built: Path, folder: str, repo_id: str) -> Path:
    """A Hugging Face hub cache entry as huggingface_hub lays it out: blobs, symlinked snapshot, refs/main,
    and a weights file that an import must not copy."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / ("c" * 40)
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for source in [*(built / folder).iterdir(), None]:
        data = source.read_bytes() if source else b"weights"
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / (source.name if source else "model.safetensors")).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c" * 40)
    return root


def test_import_from_another_machines_tokenizer_cache(built, tmp_path):
    cache = tmp_path / "tokenizers"
    assert tk.import_folder(built, cache) == [cache / OPENAI, cache / LAION]
    assert tk.cache_problem(cache) is None
    assert (cache / LAION / "vocab.json").read_bytes() == (built / LAION / "vocab.json").read_bytes()
    assert tk.import_folder(built, cache) == []


def test_import_from_a_hugging_face_hub_cache_copies_only_tokenizer_files(built, tmp_path):
    hub = tmp_path / "hf" / "hub"
    for folder, tok in zip((OPENAI, LAION), tk.TOKENIZERS):
        hub_cache(hub, built, folder, tok.repo_id)
    cache = tmp_path / "tokenizers"
    tk.import_folder(tmp_path / "hf", cache)  # HF_HOME given: its hub/ is looked into
    assert tk.cache_problem(cache) is None
    assert sorted(p.name for p in (cache / OPENAI).iterdir()) == \
           ["merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json"]
    assert not any(p.is_symlink() for p in (cache / OPENAI).iterdir())


def test_import_validates_every_source_before_copying_any(built, tmp_path):
    src = tmp_path / "src"
    for folder in (OPENAI, LAION):
        (src / folder).mkdir(parents=True)
        for f in (built / folder).iterdir():
            (src / folder / f.name).write_bytes(f.read_bytes())
    (src / LAION / "vocab.json").unlink()
    cache = tmp_path / "tokenizers"
    with pytest.raises(UserError) as error:
        tk.import_folder(src, cache)
    line, = error.value.lines
    assert tk.TOKENIZERS[1].repo_id in line and "lacks vocab.json" in line and "nothing was copied" in line
    assert not (cache / OPENAI).exists()  # the good one was not copied either
    with pytest.raises(UserError, match="no such folder"):
        tk.import_folder(tmp_path / "absent", cache)


# ---- fetch, against a loopback fake Hub --------------------------------------------------------

@pytest.fixture
def fake_hub(built):
    """Serves ``/<owner>/<name>/resolve/main/<file>`` from the built cache, like the Hub's resolve
    endpoint (the headers hf_hub_download reads); ``missing`` names files to answer 404 for."""
    missing: set[str] = set()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, body: bool) -> None:
            parts = self.path.split("?")[0].split("/")
            path = built / f"{parts[1]}_{parts[2]}" / parts[5] if len(parts) == 6 and parts[3] == "resolve" else None
            if path is None or not path.is_file() or parts[5] in missing:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("X-Repo-Commit", "a" * 40)
            self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self) -> None:
            self._answer(False)

        def do_GET(self) -> None:
            self._answer(True)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    yield SimpleNamespace(url=url, missing=missing, env=lambda tmp: {
        "HF_ENDPOINT": url, "HF_HOME": str(tmp / "hf"), "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1"})
    server.shutdown()
    server.server_close()


def test_fetch_downloads_both_from_hf_endpoint(fake_hub, built, tmp_path):
    fake_hub.missing.add("special_tokens_map.json")  # optional: skipped when the repo lacks it
    work = tmp_path / "work"
    done = run_cli("--workdir", str(work), "tokenizers", "--fetch",
                   env=fake_hub.env(tmp_path))
    assert done.returncode == 0, done.stderr
    cache = work / "cache" / "tokenizers"
    assert done.stdout.splitlines() == [f"wrote {cache / OPENAI}", f"wrote {cache / LAION}"]
    assert tk.cache_problem(cache) is None
    assert (cache / LAION / "vocab.json").read_bytes() == (built / LAION / "vocab.json").read_bytes()


def test_fetch_without_a_required_file_is_one_line_and_places_nothing(fake_hub, tmp_path):
    fake_hub.missing.add("merges.txt")
    work = tmp_path / "work"
    done = run_cli("--workdir", str(work), "tokenizers", "--fetch",
                   env=fake_hub.env(tmp_path))
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "merges.txt of openai/clip-vit-large-patch14" in done.stderr and "--from-bpe FILE" in done.stderr
    assert not any((work / "cache" / "tokenizers").iterdir())


def test_fetch_offline_is_one_line_naming_the_offline_ways(tmp_path):
    work = tmp_path / "work"
    done = run_cli("--workdir", str(work), "tokenizers", "--fetch", env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert done.returncode == 1 and done.stdout == ""
    line, = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot fetch vocab.json of openai/clip-vit-large-patch14 from the Hugging Face Hub")
    assert "HF_HUB_OFFLINE is set" in line and "--from-bpe FILE" in line and "--import DIR" in line
    assert tk.cache_problem(work / "cache" / "tokenizers") is not None


# ---- the CLI -----------------------------------------------------------------------------------

def test_cli_checks_builds_keeps_and_imports(built, tmp_path):
    work = tmp_path / "work"
    cache = work / "cache" / "tokenizers"
    done = run_cli("--workdir", str(work), "tokenizers")
    assert done.returncode == 1 and done.stdout == ""
    line, = done.stderr.strip().splitlines()
    assert line.startswith(f"error: tokenizer cache {cache} is incomplete") and "--from-bpe FILE" in line

    done = run_cli("--workdir", str(work), "tokenizers", "--from-bpe", str(bpe_file()))
    assert done.returncode == 0 and done.stdout.splitlines() == [f"wrote {cache / OPENAI}", f"wrote {cache / LAION}"]
    done = run_cli("--workdir", str(work), "tokenizers", "--from-bpe", str(bpe_file()))
    assert done.returncode == 0 and all(line.startswith("kept ") for line in done.stdout.splitlines())
    done = run_cli("--workdir", str(work), "tokenizers")
    assert done.returncode == 0 and done.stdout.startswith(f"tokenizer cache {cache} is complete")

    other = tmp_path / "other"
    done = run_cli("--workdir", str(other), "tokenizers", "--import", str(cache))
    assert done.returncode == 0 and tk.cache_problem(other / "cache" / "tokenizers") is None
    done = run_cli("--workdir", str(other), "tokenizers", "--import", str(cache), "--force")
    assert done.returncode == 0 and done.stdout.count("wrote ") == 2


@pytest.mark.parametrize("argv, code, needle", [
    (["--from-bpe", "/nonexistent/bpe.txt.gz"], 1, "--from-bpe /nonexistent/bpe.txt.gz: cannot read it"),
    (["--import", "/nonexistent"], 1, "--import /nonexistent: no such folder"),
    (["--force"], 2, "--force goes with"),
    (["--fetch", "--import", "x"], 2, "not allowed with argument"),
])
def test_cli_errors_are_one_line(tmp_path, argv, code, needle):
    done = run_cli("--workdir", str(tmp_path / "work"), "tokenizers", *argv)
    assert done.returncode == code and needle in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_package_imports_neither_torch_nor_transformers(tmp_path):
    probe = ("import sys; from swimlatent_wrap.stages import tokenizers, preflight; import swimlatent_wrap.commands.tokenizers; "
             "print(sorted(m for m in ('torch', 'transformers', 'huggingface_hub', 'open_clip') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# ---- preflight ---------------------------------------------------------------------------------

def test_preflight_refuses_an_incomplete_cache_with_the_three_ways(built, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the environment of an offline machine
    cache = tmp_path / "work" / "cache" / "tokenizers"
    result = Preflight()
    check_tokenizers(SimpleNamespace(tokenizer_cache_dir=str(cache)), result)
    line, = result.problems
    assert not result.warnings
    assert "would stop to download" in line and f"{OPENAI} absent" in line
    assert all(option in line for option in ("--fetch", "--from-bpe FILE", "--import DIR"))

    tk.import_folder(built, cache)
    result = Preflight()
    check_tokenizers(SimpleNamespace(tokenizer_cache_dir=str(cache)), result)
    assert result.problems == [] and result.warnings == []


def test_preflight_online_leaves_the_fetch_to_train(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    cache = tmp_path / "work" / "cache" / "tokenizers"
    result = Preflight()
    check_tokenizers(SimpleNamespace(tokenizer_cache_dir=str(cache)), result)
    assert result.problems == [] and result.tokenizers_to_fetch == cache
    assert "fetching them from the Hugging Face Hub once" in result.warnings[0]


# ---- contract: transformers' CLIPTokenizer, in sd-scripts' Python -------------------------------

LOAD = textwrap.dedent("""\
    import json, sys
    from transformers import CLIPTokenizer
    cache, out, captions = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    answer = {}
    for name in sys.argv[4:]:
        tok = CLIPTokenizer.from_pretrained(f"{cache}/{name}")
        tok.save_pretrained(f"{out}/{name}")
        answer[name] = {"ids": [tok(c)["input_ids"] for c in captions], "max": tok.model_max_length,
                        "special": [tok.bos_token_id, tok.eos_token_id, tok.pad_token, tok.pad_token_id], "size": len(tok)}
    print(json.dumps(answer))
""")


@pytest.mark.contract
def test_transformers_loads_both_folders_and_tokenizes_as_clip(built, tmp_path):
    python = os.environ.get("SWIMLATENT_SD_PYTHON")
    if not python:
        pytest.skip("set SWIMLATENT_SD_PYTHON to a Python with transformers (sd-scripts' environment)")
    if subprocess.run([python, "-c", "import transformers"], capture_output=True).returncode != 0:
        pytest.skip(f"{python} cannot import transformers")
    done = subprocess.run([python, "-c", LOAD, str(built), str(tmp_path), json.dumps(CAPTIONS), OPENAI, LAION],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    for name, pad, specials in ((OPENAI, ["<|endoftext|>", 49407], {}), (LAION, ["!", 0], {"!": 0})):
        got = answer[name]
        assert got["max"] == 77 and got["size"] == 49408 and got["special"] == [49406, 49407, *pad]
        reference = Reference(built / name, specials)
        assert got["ids"] == [reference.ids(c) for c in CAPTIONS]
        assert got["ids"][0] == PHOTO_OF_A_CAT
        # what save_pretrained writes for the loaded tokenizer is what we wrote
        for file in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
            assert (tmp_path / name / file).read_bytes() == (built / name / file).read_bytes(), file
    assert 0 in answer[LAION]["ids"][4] and 0 not in answer[OPENAI]["ids"][4]  # laion's "!" is its pad token
