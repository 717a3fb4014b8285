"""The accelerate launch argv from [launch]: exact lists for one GPU, several GPUs, several machines."""

from __future__ import annotations

import json

import pytest

from swimlatent_wrap.recipe import RecipeError, load_recipe
from swimlatent_wrap.recipe.types import Launch
from swimlatent_wrap.sdscripts.launch import accelerate_argv


def launch(**overrides):
    return Launch(**overrides)  # the declared defaults for every key not given


BASE = ["py", "-m", "accelerate.commands.launch", "--num_processes"]


def test_one_gpu():
    assert accelerate_argv("py", launch(), "bf16") == BASE + ["1", "--num_machines", "1", "--mixed_precision", "bf16",
                                                             "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1"]


def test_several_gpus_on_one_machine():
    assert accelerate_argv("py", launch(num_processes=4, gpu_ids="0,1,2,3"), "bf16") == BASE + [
        "4", "--num_machines", "1", "--mixed_precision", "bf16", "--dynamo_backend", "no",
        "--num_cpu_threads_per_process", "1", "--multi_gpu", "--gpu_ids", "0,1,2,3"]


def test_several_machines():
    argv = accelerate_argv("py", launch(num_processes=16, num_machines=2, machine_rank=1, main_process_ip="10.1.2.3",
                                        main_process_port=1234), "fp16")
    assert argv == BASE + ["16", "--num_machines", "2", "--mixed_precision", "fp16", "--dynamo_backend", "no",
                           "--num_cpu_threads_per_process", "1", "--multi_gpu", "--machine_rank", "1",
                           "--main_process_ip", "10.1.2.3", "--main_process_port", "1234"]


@pytest.mark.parametrize("overrides,key", [
    ({"num_machines": 2, "num_processes": 2}, "launch.main_process_ip"),
    ({"num_machines": 2, "num_processes": 2, "machine_rank": 2, "main_process_ip": "h"}, "launch.machine_rank"),
    ({"num_machines": 4, "num_processes": 2, "main_process_ip": "h"}, "launch.num_processes"),
])
def test_inconsistent_launch_is_refused_by_validate(write_recipe, overrides, key):
    body = "\n".join(f"{name} = {json.dumps(value)}" for name, value in overrides.items())
    path = write_recipe("launch.toml", f'extends = "@BASE@"\nname = "launch"\n[launch]\n{body}\n')
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    assert [p.key for p in caught.value.problems] == [key]
