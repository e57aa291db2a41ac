# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO := runs/demo

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO)/data
	$(VENV)/bin/msareid synth sysu --out $(DEMO)/data --ids 40 --seed 0
	$(VENV)/bin/msareid check-data sysu --root $(DEMO)/data
	$(VENV)/bin/msareid preview sysu --root $(DEMO)/data --out $(DEMO)/samples.png
	@echo "Open $(DEMO)/samples.png to see RGB and IR samples of the synthetic identities."

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

clean:
	rm -rf $(VENV) runs build src/*.egg-info
