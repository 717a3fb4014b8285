"""Thresholds per model (tagger.thresholds): unset [captions] thresholds take the model authors'
balanced values for a known model, 0.35 / 0.85 for any other; a value in the recipe or a flag
wins; the run's first line says which and why. The tiny tagger stands in for v2 and v3: placed
where a spec names the repo (a repo id in the HF cache, an HF cache snapshot folder, sd-scripts'
model_dir layout), it must be cut at that repo's thresholds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from swimlatent_wrap.recipe import load_recipe
from swimlatent_wrap.recipe.tables.captions import TABLE
from swimlatent_wrap.stages.tag import caption_thresholds
from swimlatent_wrap.tagger.thresholds import KNOWN, known_repo, resolve
from tests.helpers import REPO, run_cli
from tests.tagger import reference, tiny_tagger
from tests.tagger.test_model_and_cli import _hf_cache, write_recipe

V2 = "SmilingWolf/wd-v1-4-swinv2-tagger-v2"
V3 = "SmilingWolf/wd-swinv2-tagger-v3"
V3_LINE = ("thresholds: general 0.2653, character 0.85 (general: the authors' balanced value for "
           "SmilingWolf/wd-swinv2-tagger-v3; character: its card gives none, the usual 0.85)")


def test_the_known_models_and_their_cards():
    assert {m.repo_id: (m.general, m.character) for m in KNOWN} == {V2: (0.3771, 0.85), V3: (0.2653, 0.85)}
    assert not any(m.card_character for m in KNOWN)  # neither card gives a character threshold


def test_the_table_leaves_them_to_the_model():
    fields = TABLE.field_map()
    assert fields["general_threshold"].default is None and fields["character_threshold"].default is None
    assert "0.3771" in fields["general_threshold"].help and "0.2653" in fields["general_threshold"].help


@pytest.mark.parametrize("spec,general,character", [
    (V2, 0.3771, 0.85),
    (V3, 0.2653, 0.85),
    ("smilingwolf/WD-SWINV2-TAGGER-V3", 0.2653, 0.85),  # repo ids are case-insensitive on the Hub
    (" SmilingWolf/wd-swinv2-tagger-v3 ", 0.2653, 0.85),
    ("SmilingWolf/wd-vit-tagger-v3", 0.35, 0.85),  # a real repo, but no threshold declared for it
    ("someone/wd-swinv2-tagger-v3", 0.35, 0.85),  # the same name under another owner is another model
])
def test_a_repo_id_decides(spec, general, character):
    thresholds = resolve(spec, None, None)
    assert (thresholds.general, thresholds.character) == (general, character)


def test_a_value_set_wins_over_the_model():
    both = resolve(V3, 0.5, 0.9)
    assert (both.general, both.character) == (0.5, 0.9)
    assert both.line() == "thresholds: general 0.5, character 0.9 (set in [captions] or by flag)"
    one = resolve(V3, None, 0.7)
    assert (one.general, one.character) == (0.2653, 0.7)
    assert "general: the authors' balanced value for SmilingWolf/wd-swinv2-tagger-v3" in one.line()
    assert "character: set in [captions] or by flag" in one.line()
    zero = resolve(V3, 0.0, None)  # 0 is a value, not "unset"
    assert zero.general == 0.0 and zero.general_from == "set"


def test_the_lines():
    assert resolve(V3, None, None).line() == V3_LINE
    assert resolve(V2, None, None).line().startswith(
        "thresholds: general 0.3771, character 0.85 (general: the authors' balanced value for SmilingWolf/wd-v1-4-swinv2-tagger-v2;")
    assert resolve("me/mine", None, None).line() == (
        "thresholds: general 0.35, character 0.85 (the usual defaults; me/mine is not a model with published thresholds)")
    assert resolve("me/mine", None, 0.9).line() == (
        "thresholds: general 0.35, character 0.9 (general: the usual default; me/mine is not a model with "
        "published thresholds; character: set in [captions] or by flag)")


def _place(model: Path, folder: Path) -> Path:
    shutil.copytree(model, folder)
    return folder


def test_a_folder_is_matched_only_by_where_it_sits(tmp_path, tiny_model):
    # A Hugging Face cache snapshot names its repo; so does sd-scripts' --model_dir layout.
    snapshot = _place(tiny_model, tmp_path / "hub" / "models--SmilingWolf--wd-swinv2-tagger-v3" / "snapshots" / "abc123")
    sd_scripts = _place(tiny_model, tmp_path / "wd14_tagger_model" / "SmilingWolf_wd-swinv2-tagger-v3")
    v2_dir = _place(tiny_model, tmp_path / "wd14_tagger_model" / "SmilingWolf_wd-v1-4-swinv2-tagger-v2")
    assert known_repo(str(snapshot)) == V3 and known_repo(str(snapshot / "model.onnx")) == V3
    assert known_repo(str(sd_scripts)) == V3 and known_repo(str(sd_scripts / "model.onnx")) == V3
    assert known_repo("SmilingWolf_wd-swinv2-tagger-v3", base=sd_scripts.parent) == V3  # relative to the recipe
    assert resolve(str(v2_dir), None, None).general == 0.3771
    # Any other folder is unknown, whatever its name says.
    named = _place(tiny_model, tmp_path / "models" / "wd-swinv2-tagger-v3")
    assert known_repo(str(named)) is None
    assert (resolve(str(named), None, None).general, resolve(str(tiny_model), None, None).general) == (0.35, 0.35)
    # A folder on disk is a folder, even where its path reads like a repo id.
    lookalike = _place(tiny_model, tmp_path / "SmilingWolf" / "wd-swinv2-tagger-v3")
    assert known_repo("SmilingWolf/wd-swinv2-tagger-v3", base=tmp_path) is None
    assert known_repo(str(lookalike)) is None


def _expected(image: Path, general: float, character: float = 0.85) -> list[str]:
    """The caption's tags, sorted: on a flat image o_o and from_below tie (p = sigmoid(-1) ≈ 0.269,
    just over v3's 0.2653), and the float32 model and this float64 reference break the tie apart."""
    with Image.open(image) as opened:
        probs = tiny_tagger.probabilities(reference.features(opened))
    return sorted(reference.caption(probs, general=general, character=character).split(", "))


def _caption(path: Path) -> list[str]:
    return sorted(path.read_text(encoding="utf-8").strip().split(", "))


def _first_line(stderr: str) -> str:
    return stderr.splitlines()[0] if stderr else ""


def test_a_v3_model_folder_captions_at_v3s_thresholds(tmp_path, tiny_model, images, tag):
    folder = images("red.png")
    model = _place(tiny_model, tmp_path / "wd14_tagger_model" / "SmilingWolf_wd-swinv2-tagger-v3")
    code, _, err = tag("--images", folder, "--model", model)
    assert code == 0, err
    assert _first_line(err) == V3_LINE
    caption = _caption(folder / "red.txt")
    assert caption == _expected(folder / "red.png", 0.2653)
    assert "smile" in caption and "o_o" in caption  # p 0.34 and 0.269: under 0.35, over v3's 0.2653
    assert caption != _expected(folder / "red.png", 0.35)


def test_a_plain_folder_keeps_the_usual_thresholds(tmp_path, tiny_model, images, tag):
    folder = images("red.png")
    code, _, err = tag("--images", folder, "--model", tiny_model)
    assert code == 0, err
    assert _first_line(err).startswith("thresholds: general 0.35, character 0.85 (the usual defaults;")
    caption = _caption(folder / "red.txt")
    assert caption == _expected(folder / "red.png", 0.35)
    assert "looking at viewer" in caption and "smile" not in caption


@pytest.mark.parametrize("repo_id,general", [(V3, 0.2653), (V2, 0.3771)])
def test_a_repo_id_from_the_hugging_face_cache_gets_its_thresholds(tmp_path, tiny_model, images, repo_id, general):
    _hf_cache(tmp_path / "hf", repo_id, tiny_model)
    folder = images("red.png")
    result = run_cli("tag", "--images", str(folder), "--model", repo_id,
                     env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    assert _first_line(result.stderr).startswith(f"thresholds: general {general:g}, character 0.85 (general: "
                                                 f"the authors' balanced value for {repo_id};")
    caption = _caption(folder / "red.txt")
    assert caption == _expected(folder / "red.png", general)
    if repo_id == V2:  # looking_at_viewer's 0.36 passed the old 0.35, not the card's 0.3771
        assert "looking at viewer" not in caption


def test_a_flag_wins_over_the_models_thresholds(tmp_path, tiny_model, images, tag):
    folder = images("red.png")
    model = _place(tiny_model, tmp_path / "wd14_tagger_model" / "SmilingWolf_wd-swinv2-tagger-v3")
    code, _, err = tag("--images", folder, "--model", model, "--general-threshold", "0.35")
    assert code == 0, err
    assert _first_line(err) == ("thresholds: general 0.35, character 0.85 (general: set in [captions] or by flag; "
                                "character: its card gives none, the usual 0.85)")
    assert _caption(folder / "red.txt") == _expected(folder / "red.png", 0.35)


def test_a_recipe_value_wins_and_a_recipe_model_folder_is_matched_beside_it(tmp_path, tiny_model, images, tag):
    folder = images("red.png", folder="recipes/pictures")
    _place(tiny_model, tmp_path / "recipes" / "SmilingWolf_wd-swinv2-tagger-v3")
    dataset = 'name = "mine"\nsource = "folder"\npath = "pictures"'
    recipe = write_recipe(tmp_path / "recipes", dataset, 'model = "SmilingWolf_wd-swinv2-tagger-v3"')
    code, _, err = tag("--workdir", tmp_path / "work", recipe)
    assert code == 0, err
    assert _first_line(err) == V3_LINE
    assert _caption(folder / "red.txt") == _expected(folder / "red.png", 0.2653)
    recipe = write_recipe(tmp_path / "recipes", dataset, 'model = "SmilingWolf_wd-swinv2-tagger-v3"\ngeneral_threshold = 0.5')
    code, _, err = tag("--workdir", tmp_path / "work", recipe, "--force")
    assert code == 0, err
    assert _first_line(err).startswith("thresholds: general 0.5, character 0.85 (")
    assert _caption(folder / "red.txt") == _expected(folder / "red.png", 0.5)


@pytest.mark.parametrize("name", ["base", "ft", "lora"])
def test_the_shipped_recipes_now_cut_at_the_v2_cards_threshold(name):
    path = REPO / "recipes" / "swim-in-latent" / f"{name}.toml"
    if not path.is_file():
        pytest.skip(f"no {path.name}")
    recipe = load_recipe(path)
    assert recipe.captions.model == V2
    assert recipe.captions.general_threshold is None and recipe.captions.character_threshold is None
    thresholds = caption_thresholds(recipe.captions.as_dict(), recipe.path.parent)
    assert (thresholds.general, thresholds.character) == (0.3771, 0.85)


def test_resize_in_the_recipe_and_as_a_flag(tmp_path, tiny_model, images, tag):
    folder = images("red.png")
    code, _, err = tag("--images", folder, "--model", tiny_model, "--resize", "bicubic")
    assert code == 0, err
    assert "bicubic resize" in err
    with pytest.raises(SystemExit) as stopped:
        tag("--images", folder, "--model", tiny_model, "--resize", "nearest")
    assert stopped.value.code == 2


def test_resize_in_the_recipe(tmp_path, tiny_model, images, tag):
    folder = images("red.png", folder="recipes/pictures")
    dataset = 'name = "mine"\nsource = "folder"\npath = "pictures"'
    recipe = write_recipe(tmp_path / "recipes", dataset, f'model = "{tiny_model}"\nresize = "bicubic"')
    code, _, err = tag("--workdir", tmp_path / "work", recipe)
    assert code == 0, err
    assert "bicubic resize" in err and (folder / "red.txt").is_file()
    recipe = write_recipe(tmp_path / "recipes", dataset, f'model = "{tiny_model}"\nresize = "nearest"')
    result = run_cli("validate", str(recipe))
    assert result.returncode != 0 and "captions.resize" in result.stdout + result.stderr
