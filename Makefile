# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO := runs/demo
MSAREID := $(VENV)/bin/msareid
# The demo's recipe: configs/tiny.toml shortened to 20 epochs so that 6 runs fit in minutes.
DEMO_RECIPE := --set train.epochs=20 --set train.warmup_epochs=2 --set 'train.milestones=[14, 18]'

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO)
	$(MSAREID) synth sysu --out $(DEMO)/data --ids 100 --rgb-images 4 --ir-images 6 --seed 0 --workers 2
	$(MSAREID) check-data sysu --root $(DEMO)/data
	$(MSAREID) preview sysu --root $(DEMO)/data --out $(DEMO)/samples.png
	$(MSAREID) ablate --config configs/tiny.toml --set data.root=$(DEMO)/data $(DEMO_RECIPE) \
	  --rows table4 --only B,MSA --seeds 0,1,2 --jobs 2 --out $(DEMO)/ablate
	$(MSAREID) report $(DEMO)/ablate --out $(DEMO)/report.html
	@echo "Open $(DEMO)/report.html: B vs MSA over 3 seeds (mean, std, paired differences), with pictures."

test: $(STAMP)  # one pytest worker a core (at most 4), each with its share of the cores as torch threads
	$(PY) -m pytest -q -n auto --maxprocesses 4

bench: $(STAMP)  # minutes to an hour on a 2-core CPU; figures in bench/README.md
	$(PY) bench/data_bench.py
	$(PY) bench/eval_bench.py
	$(PY) bench/model_bench.py
	$(PY) bench/train_bench.py
	$(PY) bench/search_bench.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

clean:
	rm -rf $(VENV) runs build src/*.egg-info
