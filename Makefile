# midl: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=
# One data root for every target: $MIDL_DATA_DIR, else ../shared/data when present, else ./data
DATA_DIR ?= $(or $(MIDL_DATA_DIR),$(if $(wildcard ../shared/data),../shared/data,./data))
DATA_ENV = MIDL_DATA_DIR=$(abspath $(DATA_DIR))
.DEFAULT_GOAL := help
.PHONY: help install train test lint clean

help: ## List the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install midl (editable) with its dev tools; no-op when up to date

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

train: install ## Run the default job (MID-L on the embedded digits data); ARGS="..." adds Hydra overrides
	$(DATA_ENV) $(PY) -m midl.train $(ARGS)

test: install ## Run the test suite (tests needing real data read the data root, else skip)
	$(DATA_ENV) $(PY) -m pytest $(PYTEST_ARGS)

lint: install ## Lint with ruff
	$(VENV)/bin/ruff check .

clean: ## Remove run outputs and caches (keeps .venv)
	rm -rf outputs .cache .pytest_cache .ruff_cache

# ---------------------------------------------------------------------------------------------
# Paper tables and figures. Each target runs its sweep (configs/experiment/<target>.yaml
# at configs/scale/$(SCALE).yaml), then the midl.evaluate analyses its columns need, then the
# report: results/$(SCALE)/<target>.{md,csv,tex}. Finished runs and analyses are skipped, so an
# interrupted `make tables` continues where it stopped. A failed run leaves error.txt, is listed
# under its table and does not stop the other targets. The report is always rewritten (--force):
# regenerating is what these targets are for; results/ is in git, so changes show in the diff.
#   make tables SCALE=smoke | cpu | paper
# Sweep jobs run in parallel, one per core with one intra-op thread each (Hydra's joblib
# launcher, configs/hydra/launcher/local_parallel.yaml): on the 2-core CPU that trains more
# models per hour than one job on all cores (make bench: fast path section). ARGS naming a
# hydra/launcher (e.g. submitit_slurm) replaces this; PARALLEL= runs the jobs one at a time.
SCALE ?= smoke
NPROC := $(shell env -u OMP_NUM_THREADS nproc 2>/dev/null || echo 1)  # cores, not the thread setting
PARALLEL ?= $(if $(findstring hydra/launcher,$(ARGS)),,hydra/launcher=local_parallel \
	hydra.launcher.n_jobs=$(NPROC) num_threads=1)
OUTPUTS ?= $(or $(MIDL_OUTPUT_DIR),outputs)
RESULTS ?= results
CACHE_DIR ?= $(or $(MIDL_CACHE_DIR),.cache/midl)
# no real SVHN under the data root: Table 8 / Figure 4 use a generated MNIST-derived fixture
SVHN_FIXTURE := $(if $(wildcard $(DATA_DIR)/svhn/train_32x32.mat),,$(CACHE_DIR)/svhn-fixture)
# every run of this make appends its outcome (trained/skipped/failed) here; `make tables`
# sums it up at the end with the files written and the wall time (midl/reporting/session.py)
STARTED := $(shell date +%s)
ifndef RUN_LOG
RUN_LOG := $(abspath $(OUTPUTS))/.run-logs/$(shell date +%Y%m%d-%H%M%S)-$(shell echo $$$$).jsonl
endif
TABLE_ENV = $(DATA_ENV) MIDL_OUTPUT_DIR=$(OUTPUTS) MIDL_RECORDS_DIR=$(abspath $(RECORDS)) \
	MIDL_CACHE_DIR=$(abspath $(CACHE_DIR)) $(if $(SVHN_FIXTURE),MIDL_SVHN_DIR=$(abspath $(SVHN_FIXTURE))) \
	MIDL_RUN_LOG=$(RUN_LOG)
SWEEP_DIRS = $(OUTPUTS)/grid_*/multirun
# committed run records (midl/runs/records.py): every finished run of a scale, read by the reports
RECORDS ?= $(or $(MIDL_RECORDS_DIR),$(RESULTS)/runs)
TABLE_TARGETS := table2 table3 table4 table5 table6 table7 table8 table9 table10 table11 \
	table12 baselines transformer figures regimes_noise regimes_lowdata
.PHONY: tables svhn-fixture $(TABLE_TARGETS)

# $(call paper_table,NAME): sweep -> analyses -> report
define paper_table
	@echo "== $(1) at SCALE=$(SCALE): sweep"
	$(TABLE_ENV) $(PY) -m midl.train +experiment=$(1) +scale=$(SCALE) $(PARALLEL) $(ARGS) \
		|| echo "** $(1): some runs failed (error.txt in their folders); the table lists them"
	@echo "== $(1): analyses"
	$(TABLE_ENV) $(PY) -m midl.reporting.analyses $(1) $(SWEEP_DIRS) --scale $(SCALE) \
		|| echo "** $(1): some analyses failed; the table lists what is missing"
	@echo "== $(1): report"
	$(TABLE_ENV) $(PY) -m midl.report $(1) $(SWEEP_DIRS) $(RECORDS)/$(SCALE) --scale $(SCALE) \
		--out $(RESULTS) --force --command "make $(1) SCALE=$(SCALE)"
endef

# in the order the evidence is needed (the main ablation first; tables that share runs together)
tables: table4 table3 table11 table7 table6 table9 baselines table8 table2 table5 table10 table12 figures ## Every table and both figures (SCALE=smoke|cpu|paper)
	@$(PY) -m midl.reporting.session $(RUN_LOG) --since $(STARTED) \
		--written $(RESULTS)/$(SCALE) $(RECORDS)/$(SCALE) --title "make tables SCALE=$(SCALE)"

table2: install ## Table 2: low-data overfitting stress (CIFAR-10, MNIST 20/class; Adult 1,000)
	$(call paper_table,table2)
table3: install ## Table 3: CIFAR-10 label noise 20/40/60% and CIFAR-10-C
	$(call paper_table,table3)
table4: install ## Table 4: CIFAR-10 ablation (f1/f2 only, fixed alpha, random top-k, gumbel, midl)
	$(call paper_table,table4)
table5: install ## Table 5: efficiency at batch 64 (FLOPs, CPU latency, memory)
	$(call paper_table,table5)
table6: install ## Table 6: sliced mutual information (random top-k, dropout, midl)
	$(call paper_table,table6)
table7: install ## Table 7: calibration (ECE, Brier) on CIFAR-10
	$(call paper_table,table7)
table8: install svhn-fixture ## Table 8: seven datasets, baseline vs MID-L, every column
	$(call paper_table,table8)
table9: install ## Table 9: extended ablation with SMI
	$(call paper_table,table9)
table10: install ## Table 10: batch-1 latency and peak memory on CIFAR-10
	$(call paper_table,table10)
table11: install ## Table 11: robustness (appendix; the runs of Table 3)
	$(call paper_table,table11)
table12: install ## Table 12: hyperparameters from the resolved configs of the runs
	$(call paper_table,table12)
baselines: install ## Extra table: every Section 5.3 baseline on MNIST and CIFAR-10
	$(call paper_table,baselines)
transformer: install ## Extra table: MID-L in a Transformer's feed-forward slot on IMDB (ffn, midl_ffn, switch, loramoe)
	$(call paper_table,transformer)
figures: install svhn-fixture ## Figures 3 (MI vs activation frequency) and 4 (t-SNE)
	$(call paper_table,figures)

# The claims in the regimes a careful reader would propose (configs/regime/): the sweeps in
# the order of their cost (low data, MNIST, then CIFAR-10), then the two regime tables
# results/$(SCALE)/regimes_{noise,lowdata}.{md,csv,tex,png}, then the claims audit, whose
# regime claims results/$(SCALE)/regimes.{md,csv,png} arranges by family and regime.
REGIME_SWEEPS := regimes_converge regimes_standard regimes_variants regimes_memorize \
	regimes_matched
.PHONY: regimes
regimes: install ## Claims across regimes: memorize, low data to convergence, parameter-matched baseline
	for e in $(REGIME_SWEEPS); do \
		$(TABLE_ENV) $(PY) -m midl.train +experiment=$$e +scale=$(SCALE) $(PARALLEL) $(ARGS) \
		|| echo "** $$e: some runs failed (error.txt in their folders); the tables list them"; \
	done
	for t in regimes_noise regimes_lowdata; do \
		$(TABLE_ENV) $(PY) -m midl.report $$t $(SWEEP_DIRS) $(RECORDS)/$(SCALE) --scale $(SCALE) \
			--out $(RESULTS) --force --command "make regimes SCALE=$(SCALE)"; done
	$(MAKE) claims SCALE=$(SCALE)

# Equal-budget tuning (midl/tuning.py): each arm's knob x learning-rate search at 40% noise on a
# selection seed with noisy validation labels, the winners written to configs/tuning/
# <setting>_<block>.yaml (commit them; an existing one is kept while the runs choose it again,
# and a different choice stops with an error: --force chooses again), then the
# winners on the scale's seeds; `make regimes` reports them (rows "tuned").
.PHONY: tune
tune: install ## Equal-budget tuning: the searches, the winners (configs/tuning/), their runs
	for e in regimes_search_dropout regimes_search_midl; do \
		$(TABLE_ENV) $(PY) -m midl.train +experiment=$$e +scale=$(SCALE) $(PARALLEL) $(ARGS) \
		|| echo "** $$e: some runs failed (error.txt in their folders)"; done
	$(TABLE_ENV) $(PY) -m midl.tuning --scale $(SCALE) --runs $(SWEEP_DIRS) $(RECORDS)/$(SCALE)
	$(TABLE_ENV) $(PY) -m midl.train +experiment=regimes_tuned +scale=$(SCALE) $(PARALLEL) $(ARGS)

# Claims audit: every claim of results/claims.yaml judged on the run records the
# tables read (a table without records: its committed results/$(SCALE)/<table>.csv), by the rules
# of midl/claims.py -> results/$(SCALE)/claims.{md,csv,png}, claims_<table>.png and the verdict
# block of results/README.md. Runs nothing: make the tables first.
.PHONY: claims
claims: install ## Claims audit: results/$(SCALE)/claims.{md,csv,png} and results/README.md's verdicts
	$(TABLE_ENV) $(PY) -m midl.claims --scale $(SCALE) --out $(RESULTS) \
		--runs $(SWEEP_DIRS) $(RECORDS)/$(SCALE) --readme $(RESULTS)/README.md
	$(PY) -m midl.reporting.regimes --scale $(SCALE) --out $(RESULTS) --force

# Interleaved latency sessions (midl.timing): every model of Tables 5 and 10 and the Transformer
# table at the scale's efficiency seeds, timed ABAB in one process ->
# results/$(SCALE)/latency_sessions.json, which the claims audit's CPU latency ratios read. Run
# it alone on the machine; then make claims.
.PHONY: latency
latency: install ## Interleaved latency sessions of Tables 5, 10 and the Transformer (alone on the machine), then the claims
	$(TABLE_ENV) $(PY) -m midl.timing --scale $(SCALE) --out $(RESULTS) --force
	$(MAKE) claims SCALE=$(SCALE)

# Every table, both figures and the claims page from the committed run records alone
# ($(RECORDS)/$(SCALE), i.e. results/runs/<scale>/): no training, no outputs/ needed.
.PHONY: report
report: install ## Every table, figure and the claims page from results/runs/$(SCALE) alone (no training)
	@test -d $(RECORDS)/$(SCALE) || { echo "no run records in $(RECORDS)/$(SCALE)"; exit 2; }
	for t in $(TABLE_TARGETS); do \
		$(TABLE_ENV) $(PY) -m midl.report $$t $(RECORDS)/$(SCALE) --scale $(SCALE) \
			--out $(RESULTS) --force --command "make report SCALE=$(SCALE)" \
		|| echo "** $$t: not written (see the error above)"; done
	$(TABLE_ENV) $(PY) -m midl.claims --scale $(SCALE) --out $(RESULTS) \
		--runs $(RECORDS)/$(SCALE) --readme $(RESULTS)/README.md
	$(PY) -m midl.reporting.regimes --scale $(SCALE) --out $(RESULTS) --force

svhn-fixture: install ## SVHN-layout fixture from MNIST when the real SVHN files are absent
	$(if $(SVHN_FIXTURE),$(DATA_ENV) $(PY) scripts/make_svhn_fixture.py $(SVHN_FIXTURE),@echo "real SVHN files in $(DATA_DIR)/svhn")

# Fast path check: float32 vs bf16-mixed (+ channels-last), 5 seeds, MNIST MLP and CIFAR-10 CNN
# on full training sets (configs/scale/precision.yaml); about 1.5 h on an idle 2-core CPU. The
# runs' records land in results/runs/precision/, which the report reads.
.PHONY: precision
precision: install ## fp32 vs bf16 equivalence sweep -> results/bench/precision.md
	$(TABLE_ENV) PY=$(PY) bash scripts/precision_sweep.sh \
		|| echo "** precision: some runs failed (error.txt in their folders)"
	$(TABLE_ENV) $(PY) -m midl.reporting.precision $(RESULTS)/runs/precision \
		--out $(RESULTS)/bench/precision.md --force --command "make precision"

# Benchmarks: ratios timed side by side in one process -> results/bench/<device>.json
.PHONY: bench
bench: install ## Benchmark suite: block cost vs GEMM floor, baselines, framework overhead; ARGS="--smoke"
	$(DATA_ENV) $(PY) -m midl.bench $(ARGS)

# Any sweep of your own, aggregated: mean ± std per group of runs, pairwise differences with
# 95% Welch intervals, -> <DIR>/summary.{md,csv,png} (python -m midl.summarize --help)
.PHONY: summarize
summarize: install ## Summarize your own sweep: make summarize DIR=outputs/mnist_mlp/multirun [ARGS="--by block"]
	@test -n "$(DIR)" || { echo "usage: make summarize DIR=<sweep folder> [ARGS=...]"; exit 2; }
	$(PY) -m midl.summarize $(DIR) $(ARGS)
