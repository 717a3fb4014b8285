"""Finding the model (folder or Hugging Face cache), reading its tag list, choosing the provider,
and `swimlatent tag` with a recipe and with bad input."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.tagger.labels import read_labels
from swimlatent_wrap.tagger.model_files import local_model
from swimlatent_wrap.tagger.session import CPU, CUDA, choose_providers
from tests.helpers import run_cli
from tests.tagger import tiny_tagger

REPO_ID = "SmilingWolf/wd-v1-4-swinv2-tagger-v2"


def test_the_tag_list_is_read_in_model_order(tiny_model):
    labels = read_labels(tiny_model / "selected_tags.csv")
    assert list(labels.names) == tiny_tagger.NAMES
    assert labels.indices(9) == [0, 1, 2, 3]
    assert labels.indices(4) == [i for i, c in enumerate(tiny_tagger.CATEGORIES) if c == 4]


@pytest.mark.parametrize("text,message", [
    ("id,name,count\n1,a,3\n", "expected a WD14 selected_tags.csv starting with the columns tag_id,name,category"),
    ("", "(empty file)"),
    ("tag_id,name,category,count\n1,a,general,3\n", "line 2: category must be a number"),
    ("tag_id,name,category,count\n", "has a header but no tags"),
])
def test_a_bad_tag_list_is_one_clear_error(tmp_path, text, message):
    (tmp_path / "selected_tags.csv").write_text(text)
    with pytest.raises(UserError) as error:
        read_labels(tmp_path / "selected_tags.csv")
    assert message in str(error.value)


def test_a_model_folder_a_model_file_and_a_repo_id(tiny_model, tmp_path):
    assert local_model(str(tiny_model)).onnx == tiny_model / "model.onnx"
    assert local_model(str(tiny_model / "model.onnx")).tags == tiny_model / "selected_tags.csv"
    assert local_model(tiny_model.name, base=tiny_model.parent).onnx == tiny_model / "model.onnx"
    assert local_model(REPO_ID) is None  # not on disk: a Hugging Face repo
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy2(tiny_model / "model.onnx", half)
    with pytest.raises(UserError, match="missing: selected_tags.csv"):
        local_model(str(half))
    with pytest.raises(UserError, match="no such model folder or file, and not a Hugging Face repo id"):
        local_model("./no/such/place")


def test_provider_choice_and_the_reason_for_the_cpu():
    assert choose_providers([CUDA, CPU], {"onnxruntime-gpu"}, True).providers == [CUDA, CPU]
    assert choose_providers([CUDA, CPU], {"onnxruntime-gpu"}, True).cpu_reason is None
    plain = choose_providers([CPU], {"onnxruntime"}, True)
    assert plain.providers == [CPU] and "CPU-only build (install onnxruntime-gpu" in plain.cpu_reason
    both = choose_providers([CPU], {"onnxruntime", "onnxruntime-gpu"}, True)
    assert "shadows the GPU one" in both.cpu_reason
    assert choose_providers([CPU], {"onnxruntime"}, False).cpu_reason.startswith("no NVIDIA GPU is visible")


def _hf_cache(root: Path, repo_id: str, model: Path) -> None:
    """The Hugging Face cache layout hf_hub_download reads offline."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / "hub" / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(model, repo / "snapshots" / commit)


def test_a_repo_id_is_taken_from_the_hugging_face_cache(tmp_path, tiny_model, images):
    _hf_cache(tmp_path / "hf", REPO_ID, tiny_model)
    folder = images("red.png")
    result = run_cli("tag", "--images", str(folder), "--model", REPO_ID,
                     env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    assert "kaga (kantai collection)" in (folder / "red.txt").read_text()


def test_a_repo_that_cannot_be_fetched_is_one_clear_error(tmp_path, images):
    result = run_cli("tag", "--images", str(images("red.png")), "--model", "SmilingWolf/wd-swinv2-tagger-v3",
                     env={"HF_HOME": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 1
    assert "the tagger model SmilingWolf/wd-swinv2-tagger-v3 is not in the Hugging Face cache and HF_HUB_OFFLINE is set" in result.stderr
    assert "pass that folder as the model" in result.stderr
    assert "Traceback" not in result.stderr


def write_recipe(folder: Path, dataset: str, captions: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tag.toml"
    path.write_text(textwrap.dedent(f"""\
        name = "tagtest"
        script = "sdxl_train"
        model = "hf:stabilityai/stable-diffusion-xl-base-1.0/sd_xl_base_1.0.safetensors"

        [dataset]
        {dataset}

        [captions]
        {captions}

        [dataset_config]
        resolution = 1024

        [args]
        mixed_precision = "bf16"
        """))
    return path


def test_a_recipe_with_a_folder_dataset_and_a_model_folder_beside_it(tmp_path, tiny_model, images, tag):
    folder = images("red.png", "gray.png", folder="recipes/pictures")
    shutil.copytree(tiny_model, tmp_path / "recipes" / "tagger")
    recipe = write_recipe(tmp_path / "recipes", 'name = "mine"\nsource = "folder"\npath = "pictures"',
                          'model = "tagger"\nprefix = ["new", "newest", "masterpiece", "best quality"]\n'
                          'blacklist = ["1girl", "looking_at_viewer"]\nrating_tag = true')
    code, out, err = tag("--workdir", tmp_path / "work", recipe)
    assert code == 0, err
    assert (folder / "red.txt").read_text() == (
        "new, newest, masterpiece, best quality, general, kaga (kantai collection), long hair\n")
    # Flags override the recipe.
    code, _, err = tag("--workdir", tmp_path / "work", recipe, "--force", "--prefix", "", "--character-threshold", "0.99")
    assert code == 0, err
    assert (folder / "red.txt").read_text() == "general, long hair\n"


def test_a_recipe_with_a_collected_dataset_records_into_its_manifest(tmp_path, tiny_model, images, tag):
    import sqlite3

    workdir = tmp_path / "work"
    folder = images("red.png", folder="work/datasets/collected/images")
    sqlite3.connect(workdir / "datasets" / "collected" / "manifest.sqlite").close()
    recipe = write_recipe(tmp_path / "recipes", 'name = "collected"\nsource = "danbooru"\n[dataset.danbooru]\ncount = 1',
                          f'model = "{tiny_model}"')
    code, _, err = tag("--workdir", workdir, recipe)
    assert code == 0, err
    assert (folder / "red.txt").is_file()
    with sqlite3.connect(workdir / "datasets" / "collected" / "manifest.sqlite") as db:
        assert db.execute("SELECT count(*) FROM tagger_captions").fetchone() == (1,)


def test_a_recipe_whose_dataset_is_not_collected_says_what_to_run(tmp_path, tiny_model, tag):
    recipe = write_recipe(tmp_path / "recipes", 'name = "later"\nsource = "danbooru"\n[dataset.danbooru]\ncount = 1',
                          f'model = "{tiny_model}"')
    code, _, err = tag("--workdir", tmp_path / "work", recipe)
    assert code == 1
    assert "the dataset's images folder does not exist; collect it first: swimlatent collect" in err


@pytest.mark.parametrize("argv,code,message", [
    ([], 2, "give a RECIPE, or --images DIR"),
    (["r.toml", "--images", "x"], 2, "give a RECIPE or --images DIR, not both"),
    (["--images", "@MISSING@"], 1, "no such folder of images"),
    (["--images", "@EMPTY@", "--model", "@MODEL@"], 1, "no images to caption"),
    (["--images", "@IMAGES@", "--model", "@MODEL@", "--general-threshold", "1.5"], 2, "--general-threshold must be between 0 and 1"),
    (["--images", "@IMAGES@", "--model", "./nowhere"], 1, "./nowhere: no such model folder or file"),
])
def test_bad_input_is_one_clear_line(tmp_path, tiny_model, images, tag, argv, code, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    swap = {"@MISSING@": str(tmp_path / "missing"), "@EMPTY@": str(tmp_path / "empty"), "@MODEL@": str(tiny_model),
            "@IMAGES@": str(images("red.png"))}
    exit_code, _, err = tag(*[swap.get(a, a) for a in argv])
    assert exit_code == code  # 2: the command line itself is wrong (usage); 1: what it names is
    assert message in err and "Traceback" not in err


def test_a_terminal_gets_a_progress_bar_with_rate_and_eta():
    import io

    from swimlatent_wrap.tagger.terminal import Terminal

    class TTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = TTY()
    terminal = Terminal(stream)
    with terminal.progress(4, "tagging") as advance:
        advance(4)
    terminal.warn("CPU")
    assert "images/s" in stream.getvalue() and "ETA" in stream.getvalue() and "4/4" in stream.getvalue()
    assert "warning: CPU" in stream.getvalue()


def test_blacklist_and_rating_tag_flags(tiny_model, images, tag):
    folder = images("red.png")
    code, _, err = tag("--images", folder, "--model", tiny_model)
    assert code == 0, err
    plain = (folder / "red.txt").read_text().strip().split(", ")
    assert "long hair" in plain and "general" not in plain
    code, _, err = tag("--images", folder, "--model", tiny_model, "--force", "--blacklist", "long_hair", "--rating-tag")
    assert code == 0, err
    assert (folder / "red.txt").read_text().strip().split(", ") == ["general"] + [t for t in plain if t != "long hair"]
