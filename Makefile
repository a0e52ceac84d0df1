# Two commands set everything up on a fresh machine: `make demo` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test install bench backtest clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q torch==2.13.0  # the test extras' torch, first and alone: else pip picks a multi-GB CUDA build
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(VENV)/bin/velibcast demo --config configs/local.yaml

# Lint and type check first (seconds), then the suite; configured in pyproject.toml.
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(PY) -m pytest -q --durations=15

bench: $(STAMP)
	$(PY) bench/windows.py && $(PY) bench/states.py && $(PY) bench/transform.py && $(PY) bench/overlap.py && $(PY) bench/e2e.py && $(PY) bench/capacity.py && $(PY) bench/predict.py

# The backtest table of training/README.md: the 15 bundled Paris days (2022-05-12..26), each day
# forecast by a model trained on the days before it. The 2025-09 sample is a separate store.
backtest: $(STAMP)
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(VENV)/bin/velibcast evaluate --backtest --snapshots sample_data \
	  --start 2022-05-11T22:00Z --end 2022-05-26T22:00Z --json-out data/backtest.json

clean:
	rm -rf data bench/results
