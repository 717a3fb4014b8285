"""`make setup` resolvable on a clean Linux machine: pip's resolver, as a dry run against the package
registry, for the torch pin `make setup` installs (Makefile TORCH_PACKAGES) together with sd-scripts'
requirements.txt (from the pinned archive, as tools/real_tier_env.sh unpacks it) and swimlatent's own
extras, which share the one venv.

No CUDA build is downloaded: torch and torchvision come from stand-in wheels (metadata only) with the
dependencies their CPU builds declare, pinned by a constraint with the `+cpu` local label, which the
Makefile's `torch==X` accepts (PEP 440) and no registry's CUDA wheel carries. Everything else comes
from the registry; pip's own configuration is left out (PIP_CONFIG_FILE=/dev/null), as on a clean
machine. Skipped, with the reason, when the registry cannot be reached.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INDEX = "https://pypi.org/simple"
# What the CPU wheels of torch 2.6.0 and torchvision 0.21.0 declare: the CUDA wheels' Requires-Dist
# without their nvidia-*/triton lines (which only the CUDA index pairs with its torch).
STAND_INS = {
    "torch": ["filelock", "typing-extensions>=4.10.0", "networkx", "jinja2", "fsspec",
              'setuptools; python_version >= "3.12"', 'sympy==1.13.1; python_version >= "3.9"'],
    "torchvision": ["numpy", "torch==2.6.0", "pillow!=8.3.*,>=5.3.0"],
}
# The packages the README's setup paragraph names.
KEY = ("torch", "torchvision", "accelerate", "transformers", "diffusers", "huggingface-hub", "safetensors",
       "bitsandbytes", "numpy", "opencv-python", "tensorboard", "rich")


def _registry_unreachable() -> str | None:
    cafile = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    try:
        context = ssl.create_default_context(cafile=cafile if cafile and os.path.isfile(cafile) else None)
        with urllib.request.urlopen(f"{INDEX}/pip/", timeout=10, context=context) as answer:
            answer.read(1)
    except Exception as error:  # noqa: BLE001  (any reason is a reason to skip)
        return f"the package registry {INDEX} cannot be reached ({type(error).__name__}: {error})"
    return None


REASON = _registry_unreachable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def torch_packages() -> list[str]:
    found = re.search(r"^TORCH_PACKAGES\s*\?=\s*(.+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert found, "Makefile: no TORCH_PACKAGES"
    return found.group(1).split()


def sd_scripts(tmp: Path) -> Path:
    pin = json.loads((REPO / "swimlatent_wrap" / "sdscripts" / "manifest.json").read_text())["sd_scripts_commit"]
    archive = REPO.parent / "shared" / "third_party" / f"sd-scripts-{pin[:8]}.tar.gz"
    if not archive.is_file():
        pytest.skip(f"no {archive} (the pinned sd-scripts archive)")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    return tmp / "sd-scripts"


def stand_in(folder: Path, name: str, version: str, requires: list[str]) -> None:
    dist = f"{name}-{version}.dist-info"
    metadata = "\n".join(["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", "Requires-Python: >=3.9",
                          *(f"Requires-Dist: {r}" for r in requires)]) + "\n"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{name}/__init__.py", "")
        wheel.writestr(f"{dist}/METADATA", metadata)
        wheel.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: swimlatent-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{dist}/RECORD", "")


@pytest.mark.timeout(240)
def test_make_setup_resolves_torch_with_sd_scripts_requirements_and_ours(tmp_path):
    sd = sd_scripts(tmp_path / "src")
    pins = dict(p.split("==", 1) for p in torch_packages())
    assert set(pins) == {"torch", "torchvision"}, pins
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name, version in pins.items():
        stand_in(wheels, name, f"{version}+cpu", STAND_INS[name])
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("".join(f"{name}=={version}+cpu\n" for name, version in pins.items()))
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    if os.environ.get("PIP_CERT"):
        env["PIP_CERT"] = os.environ["PIP_CERT"]  # the machine's TLS trust, not a package source
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--report", str(report),
         "--index-url", INDEX, "--find-links", str(wheels), "-c", str(constraints),
         *torch_packages(), "-r", "requirements.txt", f"{REPO}[all]"],
        cwd=sd, env=env, capture_output=True, text=True, timeout=220)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    installed = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
                 for item in json.loads(report.read_text())["install"]}
    print("resolved:", ", ".join(f"{name} {installed.get(name)}" for name in KEY))
    assert installed["torch"] == f"{pins['torch']}+cpu" and installed["torchvision"] == f"{pins['torchvision']}+cpu"
    assert not [name for name in installed if name.startswith("nvidia-") or name == "triton"], "a CUDA package"
    assert not re.search(r"Downloading (torch|torchvision|nvidia)", done.stdout), done.stdout
    requirements = dict(re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", (sd / "requirements.txt").read_text(), re.MULTILINE))
    for name, version in requirements.items():  # sd-scripts' exact pins hold beside ours
        assert installed[name.lower().replace("_", "-")] == version, name
    assert installed["swimlatent"] and installed["library"]  # ours, and sd-scripts' own `-e .`
