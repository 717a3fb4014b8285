"""A selection dataset trains on exactly the selected images of its source dataset."""

from __future__ import annotations

import pytest

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.recipe import load_recipe
from swimlatent_wrap.stages.plan import make_plan
from swimlatent_wrap.stages.selection import materialize_selection
from swimlatent_wrap.workdir import Workdir
from tests.helpers import make_images


@pytest.fixture
def lora_recipe(write_recipe, tmp_path):
    write_recipe("ft.toml", 'extends = "@BASE@"\nname = "ft"\n[dataset]\nname = "style"\n')
    return write_recipe("lora.toml", """
        extends = "ft.toml"
        name = "lora"
        model = "stage:ft"
        [dataset]
        name = "picked"
        source = "selection"
        from_dataset = "style"
        selection = "picked.txt"
    """)


def test_selected_images_and_captions_are_linked(lora_recipe, tmp_path):
    workdir = Workdir(tmp_path / "work")
    images = make_images(workdir.images_dir("style"), 5, caption="new, newest, 1girl")
    (lora_recipe.parent / "picked.txt").write_text(f"# picked by hand\n{images[1].name}\n\n{images[3].name}\n")
    recipe = load_recipe(lora_recipe)
    linked = materialize_selection(recipe, workdir)
    target = workdir.images_dir("picked")
    assert sorted(p.name for p in target.iterdir()) == sorted([images[1].name, images[1].with_suffix(".txt").name,
                                                               images[3].name, images[3].with_suffix(".txt").name])
    assert linked[0].stat().st_ino == images[1].stat().st_ino  # a hard link, not a copy
    plan = make_plan(recipe, run_dir=tmp_path / "run", workdir=workdir, sd_scripts=tmp_path / "sd")
    assert plan.image_dir == target
    # narrowing the selection removes what is no longer selected, never from the source
    (lora_recipe.parent / "picked.txt").write_text(f"{images[3].name}\n")
    materialize_selection(recipe, workdir)
    assert sorted(p.name for p in target.iterdir()) == [images[3].name, images[3].with_suffix(".txt").name]
    assert all(p.exists() for p in images)


def test_missing_or_empty_selection_is_a_clear_error(lora_recipe, tmp_path):
    workdir = Workdir(tmp_path / "work")
    make_images(workdir.images_dir("style"), 2)
    recipe = load_recipe(lora_recipe)
    with pytest.raises(UserError, match="selection file not found"):
        materialize_selection(recipe, workdir)
    (lora_recipe.parent / "picked.txt").write_text("# nothing yet\n")
    with pytest.raises(UserError, match="the selection is empty"):
        materialize_selection(recipe, workdir)
    (lora_recipe.parent / "picked.txt").write_text("absent.png\n")
    with pytest.raises(UserError, match="not in"):
        materialize_selection(recipe, workdir)
