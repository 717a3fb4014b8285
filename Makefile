# swimlatent — every target calls the CLI; `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SW     := $(BIN)/swimlatent
RECIPES ?= recipes/swim-in-latent
WORKDIR ?= work
# Where the real sd-scripts checkout is (contract/gpu tiers) and the Python that can import it.
SD_SCRIPTS ?= vendor/sd-scripts
SD_PYTHON  ?= $(BIN)/python

.DEFAULT_GOAL := help
.PHONY: help venv setup test test-real test-contract test-gpu plan validate base ft lora base-24gb ft-24gb bench manifest clean

help:
	@echo "make test                 build .venv from nothing, type-check (mypy) and run the default test tier"
	@echo "make setup                .venv + sd-scripts submodule + its requirements (for training)"
	@echo "make test-real            the real sd-scripts on CPU: every stage trained for real (about 30 min, 20 GiB of RAM, 60 GB of disk)"
	@echo "make base | ft | lora     run that stage of Swim in Latent (setup included)"
	@echo "make base-24gb | ft-24gb  the same stage for one 24 GB GPU (8-bit Lion state, fused optimizer groups)"
	@echo "make plan                 write the sd-scripts launch of every stage under $(WORKDIR)/plans/"
	@echo "make validate             validate every shipped recipe"
	@echo "make bench                run the benchmarks in bench/ (ratios against a peer)"
	@echo "make test-contract SD_SCRIPTS=DIR [SD_PYTHON=PY]   plans through sd-scripts' own parsers"
	@echo "make manifest SD_SCRIPTS=DIR [SD_PYTHON=PY]        regenerate the option manifest"

# The wrapper's own environment: stdlib venv + pip, nothing installed by hand.
$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,test]'
	$(BIN)/python -m pip install -q --no-deps open-clip-torch==3.3.0
	@touch $@

venv: $(BIN)/.installed

test: venv
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q

# The real tier (issue 9): sd-scripts from SWIMLATENT_SD_SCRIPTS, vendor/sd-scripts or the pinned
# archive in ../shared/third_party, in a CPU venv of its own (tools/real_tier_env.sh, cached).
test-real: venv
	bash tools/real_tier_env.sh
	. build/real/env && $(BIN)/python -m pytest -q -m real tests/real

test-contract: venv
	SWIMLATENT_SD_SCRIPTS=$(abspath $(SD_SCRIPTS)) SWIMLATENT_SD_PYTHON=$(abspath $(SD_PYTHON)) \
		$(BIN)/python -m pytest -q -m contract tests/contract tests/train tests/tagger tests/tokenizers

test-gpu: venv
	$(BIN)/python -m pytest -q -m gpu

manifest:
	$(SD_PYTHON) tools/gen_option_manifest.py --sd-scripts $(SD_SCRIPTS) --out swimlatent_wrap/sdscripts/manifest.json

validate: venv
	$(SW) validate $(RECIPES)/*.toml

plan: venv
	@for stage in base ft lora; do \
		$(SW) --workdir $(WORKDIR) plan $(RECIPES)/$$stage.toml --out $(WORKDIR)/plans/$$stage || exit 1; \
	done

# make setup: the sd-scripts checkout (the submodule, or SWIMLATENT_SD_SCRIPTS) and the torch build
# for your CUDA (sd-scripts' requirements.txt lists no torch: facts §9). Re-running is cheap: the
# installs are skipped while the checkout and its requirements.txt are unchanged.
SETUP_SD_SCRIPTS ?= $(or $(SWIMLATENT_SD_SCRIPTS),vendor/sd-scripts)
TORCH_INDEX_URL  ?= https://download.pytorch.org/whl/cu124
TORCH_PACKAGES   ?= torch==2.6.0 torchvision==0.21.0
SD_SCRIPTS_PIN   := $(shell sed -n 's/.*"sd_scripts_commit": *"\([0-9a-f]*\)".*/\1/p' swimlatent_wrap/sdscripts/manifest.json)

setup: venv
	@sd='$(SETUP_SD_SCRIPTS)'; py='$(abspath $(BIN))/python'; stamp='$(abspath $(BIN))/.setup-sd-scripts'; \
	if [ ! -f "$$sd/sdxl_train.py" ]; then \
	  if [ "$$sd" = vendor/sd-scripts ] && git submodule update --init vendor/sd-scripts && [ -f vendor/sd-scripts/sdxl_train.py ]; then \
	    echo "make setup: vendor/sd-scripts initialised"; \
	  else \
	    echo "make setup: no sd-scripts checkout at $$sd (git submodule update --init vendor/sd-scripts did not work: no access to GitHub, or not a git clone)." >&2; \
	    echo "make setup: point SWIMLATENT_SD_SCRIPTS (or swimlatent --sd-scripts) at a kohya-ss/sd-scripts checkout of commit $(SD_SCRIPTS_PIN) and run it again, e.g." >&2; \
	    echo "    git clone https://github.com/kohya-ss/sd-scripts DIR && git -C DIR checkout $(SD_SCRIPTS_PIN) && export SWIMLATENT_SD_SCRIPTS=DIR && make setup" >&2; \
	    exit 1; \
	  fi; \
	fi; \
	want="$$(cd "$$sd" && pwd) $$(cksum < "$$sd/requirements.txt")"; \
	if [ -f "$$stamp" ] && [ "$$(cat "$$stamp")" = "$$want" ]; then \
	  echo "make setup: up to date (sd-scripts at $$sd, its requirements in $(VENV))"; exit 0; \
	fi; \
	if "$$py" -c 'import sys, torch; sys.exit(0 if torch.version.cuda else 3)' 2>/dev/null; then \
	  echo "make setup: torch $$("$$py" -c 'import torch; print(torch.__version__)') (CUDA build) already installed"; \
	elif "$$py" -c 'import torch' 2>/dev/null; then \
	  echo "make setup: warning: the installed torch is a CPU build; for training: $$py -m pip install --force-reinstall $(TORCH_PACKAGES) --index-url $(TORCH_INDEX_URL)" >&2; \
	else \
	  "$$py" -m pip install $(TORCH_PACKAGES) --index-url $(TORCH_INDEX_URL) || { echo "make setup: installing torch failed; pick the build for your CUDA: make setup TORCH_INDEX_URL=... TORCH_PACKAGES='torch==... torchvision==...'" >&2; exit 1; }; \
	fi; \
	(cd "$$sd" && "$$py" -m pip install -r requirements.txt) || { echo "make setup: installing sd-scripts' requirements from $$sd/requirements.txt failed (see above)" >&2; exit 1; }; \
	echo "$$want" > "$$stamp"; \
	echo "make setup: done: sd-scripts at $$sd; its requirements and torch in $(VENV)"

# make setup-check: would `make setup` resolve on a clean Linux machine? pip's resolver as a dry run
# against the registry for TORCH_PACKAGES with sd-scripts' requirements.txt (the pinned archive) and
# ours, with CPU stand-ins for torch (no CUDA download); about 15 s, skipped when offline.
.PHONY: setup-check
setup-check: venv
	$(BIN)/python -m pytest -q -rs -s tests/hub/test_setup_resolves.py

base ft lora base-24gb ft-24gb: setup
	SWIMLATENT_SD_SCRIPTS=$(abspath $(SETUP_SD_SCRIPTS)) $(SW) --workdir $(WORKDIR) run $(RECIPES)/$@.toml

bench: venv
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info
