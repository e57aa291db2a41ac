# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO := runs/demo
MSAREID := $(VENV)/bin/msareid

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO)
	$(MSAREID) synth sysu --out $(DEMO)/data --ids 120 --seed 0 --workers 2
	$(MSAREID) check-data sysu --root $(DEMO)/data
	$(MSAREID) preview sysu --root $(DEMO)/data --out $(DEMO)/samples.png
	$(MSAREID) train --config configs/tiny.toml --set model.r2i=false --set model.i2r=false --out $(DEMO)/baseline
	$(MSAREID) evaluate --checkpoint $(DEMO)/baseline/last.pt --dataset synthetic --root $(DEMO)/data --out $(DEMO)/baseline/eval.json
	$(MSAREID) train --config configs/tiny.toml --out $(DEMO)/msa
	$(MSAREID) evaluate --checkpoint $(DEMO)/msa/last.pt --dataset synthetic --root $(DEMO)/data --out $(DEMO)/msa/eval.json
	$(MSAREID) report $(DEMO)/baseline $(DEMO)/msa --out $(DEMO)/report.html
	@echo "Open $(DEMO)/report.html: baseline vs MSA on the synthetic data, with curves and pictures."

test: $(STAMP)
	$(PY) -m pytest -q

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
