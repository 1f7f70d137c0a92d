# The two set-up commands of the README. Both create .venv if missing and install what they need:
# torch==2.13.0 first (the CPU wheel on disk; an unpinned torch would pull gigabytes of CUDA), then the package.
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.fnb-installed
export FNB_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install demo test lab readme

$(STAMP): setup.py settings.ini pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	@echo "installing torch==2.13.0 and fourier_nb[dev,ecosystem] into $(VENV) (log: $(VENV)/install.log)"
	@$(PY) -m pip install -q torch==2.13.0 > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@$(PY) -m pip install -q -e ".[dev,ecosystem]" >> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	touch $(STAMP)

install: $(STAMP)

# The main job: the strongest simple baseline first (a bag of hashed token vectors, seconds), then the paper's
# 1-layer d=256 Fourier encoder (about 6 minutes on 2 cores), then both side by side.
demo: install
	$(BIN)/fnb_train --config configs/cpu-demo-bag.yaml
	$(BIN)/fnb_train --config configs/cpu-demo.yaml
	$(BIN)/fnb_train --table cpu-demo-bag cpu-demo

# Sync check (notebooks are the source of the library), notebook tests, then pytest.
test: install
	$(BIN)/nbdev_clean
	$(BIN)/nbdev_export
	@if [ -n "$$(git status --porcelain -- nbs fourier_nb)" ]; then \
	  echo "Notebooks and fourier_nb/ are out of sync (or notebooks not cleaned): run nbdev_clean && nbdev_export and commit."; \
	  git status --porcelain -- nbs fourier_nb; git diff --stat -- nbs fourier_nb; exit 1; fi
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers 2   # 2 notebooks at once, 1 thread each: no OpenMP oversubscription
	$(BIN)/pytest -q

# README.md is generated from nbs/index.ipynb (quarto cannot be installed here; a test checks they agree).
readme: install
	$(PY) tools/readme.py

# JupyterLab for exploring (as root it needs --allow-root).
lab: install
	$(BIN)/jupyter lab --notebook-dir=nbs --no-browser --ip=127.0.0.1 $$( [ "$$(id -u)" = 0 ] && echo --allow-root )
