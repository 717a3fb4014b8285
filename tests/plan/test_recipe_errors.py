"""Bad recipes are refused by `swimlatent validate`/`plan` with one line per problem, never a traceback."""

from __future__ import annotations

import re

import pytest

from tests.helpers import run_cli

LINE = re.compile(r"^(?P<file>[^:]+\.toml): (?P<key>[^:]+): (?P<message>.+)$")


def refused(*argv: str) -> list[re.Match]:
    result = run_cli(*argv)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    return matches


def test_every_problem_is_reported_at_once(write_recipe):
    path = write_recipe("many.toml", """
        extends = "@BASE@"
        name = "many"
        scrpt = "sdxl_train"
        [args]
        learning_rat = 1e-5
        learning_rate = "4e-6"
        lr_scheduler = "cosine_with_restart"
        [dataset_config]
        resolution = "1024"
        [captions]
        general_treshold = 0.3
    """)
    found = {m["key"]: m["message"] for m in refused("validate", str(path))}
    assert found["scrpt"] == "unknown top-level key; did you mean 'script'?"
    assert "did you mean 'learning_rate'?" in found["args.learning_rat"]
    assert found["args.learning_rate"] == "expected a number, got a string ('4e-6')"
    assert "did you mean 'cosine_with_restarts'?" in found["args.lr_scheduler"]
    assert "expected an integer or an array [width, height]" in found["dataset_config.resolution"]
    assert "did you mean 'general_threshold'?" in found["captions.general_treshold"]
    assert len(found) == 6


def test_problem_names_the_file_that_set_the_key(write_recipe):
    parent = write_recipe("parent.toml", """
        extends = "@BASE@"
        name = "parent"
        [args]
        optimizer_type = "Lino"
    """)
    child = write_recipe("child.toml", """
        extends = "parent.toml"
        name = "child"
        [args]
        learning_rate = 1e-5
    """)
    (match,) = refused("validate", str(child))
    assert match["file"].endswith("parent.toml") and match["key"] == "args.optimizer_type"
    assert "did you mean 'Lion'?" in match["message"]
    assert child.exists() and parent.exists()


def test_bad_choice(write_recipe):
    path = write_recipe("choice.toml", """
        extends = "@BASE@"
        name = "choice"
        [args]
        mixed_precision = "bf17"
        save_precision = "fp8"
    """)
    found = {m["key"]: m["message"] for m in refused("validate", str(path))}
    assert "expected one of 'no', 'fp16', 'bf16'" in found["args.mixed_precision"]
    assert "expected one of 'float', 'fp16', 'bf16'" in found["args.save_precision"]


def test_extends_cycle(write_recipe):
    a = write_recipe("a.toml", 'extends = "b.toml"\nname = "a"\n')
    write_recipe("b.toml", 'extends = "a.toml"\nname = "b"\n')
    (match,) = refused("validate", str(a))
    assert match["key"] == "extends" and "cycle in extends" in match["message"]
    assert "a.toml → " in match["message"] and "b.toml → " in match["message"]


def test_missing_files(write_recipe, tmp_path):
    path = write_recipe("missing.toml", """
        extends = "nope.toml"
        name = "missing"
    """)
    (match,) = refused("validate", str(path))
    assert match["key"] == "extends" and "file not found" in match["message"]
    path = write_recipe("model.toml", """
        extends = "@BASE@"
        name = "model"
        model = "../models/absent.safetensors"
        [sample]
        prompts = "absent-prompts.txt"
    """)
    found = {m["key"]: m["message"] for m in refused("validate", str(path))}
    assert found["model"].startswith("file not found: ") and "absent.safetensors" in found["model"]
    assert found["sample.prompts"].startswith("file not found: ")
    result = run_cli("validate", str(tmp_path / "recipes" / "does-not-exist.toml"))
    assert result.returncode == 1 and "recipe file not found" in result.stderr and "Traceback" not in result.stderr


def test_unknown_stage_reference(write_recipe):
    write_recipe("base.toml", 'extends = "@BASE@"\nname = "base"\n')
    path = write_recipe("next.toml", 'extends = "@BASE@"\nname = "next"\nmodel = "stage:bsae"\n')
    (match,) = refused("validate", str(path))
    assert match["key"] == "model" and "no recipe named 'bsae'" in match["message"] and "did you mean 'base'?" in match["message"]


def test_name_must_be_set_in_the_recipe_itself(write_recipe):
    path = write_recipe("noname.toml", 'extends = "@BASE@"\n')
    (match,) = refused("validate", str(path))
    assert match["key"] == "name" and "must be set in this file" in match["message"]


def test_invalid_toml_is_one_line(write_recipe):
    path = write_recipe("broken.toml", 'name = "x\n')
    (match,) = refused("validate", str(path))
    assert match["key"] == "(toml)" and "invalid TOML" in match["message"]


def test_plan_refuses_a_bad_recipe_and_writes_nothing(write_recipe, tmp_path):
    path = write_recipe("bad.toml", 'extends = "@BASE@"\nname = "bad"\n[args]\nlearning_rate = "fast"\n')
    out = tmp_path / "out"
    refused("plan", str(path), "--out", str(out))
    assert not out.exists()


def test_usage_error_exits_2():
    result = run_cli("plan")
    assert result.returncode == 2 and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["collect", "tag", "train", "sweep", "merge"])
def test_commands_refuse_bad_recipes_without_traceback(write_recipe, command):
    path = write_recipe("bad.toml", 'extends = "@BASE@"\nname = "bad"\n[args]\nlearning_rate = "fast"\n')
    result = run_cli(command, str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_an_unwritable_output_folder_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli("plan", "recipes/swim-in-latent/base.toml", "--out", str(blocker / "plan"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
