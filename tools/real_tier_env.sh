#!/usr/bin/env bash
# The real tier's sd-scripts and its Python, made from nothing and cached (make test-real).
#
#   where sd-scripts comes from, first that exists:
#     1. $SWIMLATENT_SD_SCRIPTS                      (a checkout you point at)
#     2. vendor/sd-scripts                           (the submodule, when initialised)
#     3. ../shared/third_party/sd-scripts-48d368fa.tar.gz, checked against its SHA256SUMS and
#        unpacked outside the repository, under $SWIMLATENT_REAL_CACHE (default ~/.cache/swimlatent):
#        inside our work tree, sd-scripts' own `git rev-parse HEAD` would find this repository's
#        commit and stamp it into every model as sd-scripts' (ss_sd_scripts_commit_hash)
#   its Python: build/real/sd-venv, a venv of its own with the CPU torch 2.13.0 (+cpu), sd-scripts'
#   requirements.txt (which installs sd-scripts itself, `-e .`, as `make setup` does) and
#   torchvision 0.28.0 without dependencies (the CUDA build on PyPI; it imports beside the CPU
#   torch only through swimlatent_wrap/sdscripts/cpu_env/sitecustomize.py). A stamp holding the
#   checkout path and a hash of the inputs makes a rerun install nothing.
#
# Writes build/real/env: the two variables the tier's tests read. Prints what it did.
set -euo pipefail
cd "$(dirname "$0")/.."
REAL=build/real
PY="${PYTHON:-python3}"
# The CPU build by its local version label: pip finds it on these machines (a wheel on disk); where
# it cannot, the install fails at once instead of pulling a multi-GB CUDA build from PyPI.
TORCH="${SWIMLATENT_REAL_TORCH:-torch==2.13.0+cpu}"
TORCHVISION="torchvision==0.28.0"
PIN="$(sed -n 's/.*"sd_scripts_commit": *"\([0-9a-f]*\)".*/\1/p' swimlatent_wrap/sdscripts/manifest.json)"
ARCHIVE="${SWIMLATENT_SD_ARCHIVE:-../shared/third_party/sd-scripts-${PIN:0:8}.tar.gz}"
mkdir -p "$REAL"

if [ -n "${SWIMLATENT_SD_SCRIPTS:-}" ]; then
  sd="$SWIMLATENT_SD_SCRIPTS"; how="SWIMLATENT_SD_SCRIPTS"
elif [ -f vendor/sd-scripts/sdxl_train.py ]; then
  sd="vendor/sd-scripts"; how="the initialised submodule"
else
  [ -f "$ARCHIVE" ] || { echo "real tier: no sd-scripts: set SWIMLATENT_SD_SCRIPTS, initialise vendor/sd-scripts, or provide $ARCHIVE" >&2; exit 1; }
  sums="$(dirname "$ARCHIVE")/SHA256SUMS"
  want="$(awk -v f="$(basename "$ARCHIVE")" '$2 == f || $2 == "*"f {print $1}' "$sums")"
  have="$(sha256sum "$ARCHIVE" | cut -d' ' -f1)"
  [ -n "$want" ] && [ "$want" = "$have" ] || { echo "real tier: $ARCHIVE does not match $sums (sha256 $have)" >&2; exit 1; }
  cache="${SWIMLATENT_REAL_CACHE:-${HOME:-/tmp}/.cache/swimlatent}"
  mkdir -p "$cache"
  dest="$cache/sd-scripts-${PIN:0:8}"
  if [ "$(cat "$dest/.unpacked" 2>/dev/null)" != "$have" ]; then
    rm -rf "$dest" "$dest.tmp" && mkdir -p "$dest.tmp"
    tar -xzf "$ARCHIVE" -C "$dest.tmp"
    mv "$dest.tmp/sd-scripts" "$dest" && rmdir "$dest.tmp"
    echo "$have" > "$dest/.unpacked"
    echo "real tier: unpacked $ARCHIVE into $dest"
  fi
  sd="$dest"; how="$ARCHIVE (sha256 checked)"
fi
sd="$(cd "$sd" && pwd)"
[ -f "$sd/sdxl_train.py" ] || { echo "real tier: $sd is not an sd-scripts checkout (no sdxl_train.py)" >&2; exit 1; }

venv="$REAL/sd-venv"
stamp="$venv/.swimlatent-stamp"
want="$sd $("$PY" --version 2>&1) $TORCH $TORCHVISION $(sha256sum "$sd/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "real tier: building $venv (CPU torch, sd-scripts' requirements)"
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q "$TORCH"
  "$venv/bin/python" -c 'import sys, torch; sys.exit("real tier: pip installed a CUDA torch (" + torch.__version__ + "); the tier needs the CPU build" if torch.version.cuda else 0)'
  # requirements.txt ends with `-e .`: run from the checkout, as `make setup` does; torch stays pinned.
  (cd "$sd" && "$OLDPWD/$venv/bin/python" -m pip install -q -r requirements.txt -c <(echo "$TORCH"))
  "$venv/bin/python" -m pip install -q --no-deps "$TORCHVISION"
  "$venv/bin/python" -c 'import sys, torch; sys.exit("real tier: torch was replaced by a CUDA build" if torch.version.cuda else 0)'
  echo "$want" > "$stamp"
fi
printf 'export SWIMLATENT_SD_SCRIPTS=%q\nexport SWIMLATENT_SD_PYTHON=%q\n' "$sd" "$(pwd)/$venv/bin/python" > "$REAL/env"
echo "real tier: sd-scripts from $how: $sd; its Python: $venv/bin/python"
