# The two commands a user needs: `make test` and `make demo`. Both set up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= outputs/demo

export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: test test-fast test-numerics-avx2 demo demo-compare lint clean reliability

# torch and torchvision are pinned together: other pairs break torchvision's operators on this CPU image.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1" -e ".[dev]"
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The suite runs on pytest-xdist workers, one per CPU (nproc), at most 4; TEST_WORKERS=0 runs it in this process.
# Each test runs one intra-op thread and much of its time is interpreter start-up, so in one process a 2-core
# machine is half idle. `make reliability` stays in one process: its tests collect what they saw into it.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))
XDIST := -n $(TEST_WORKERS)

test: lint
	$(PY) -m pytest -q $(XDIST)

test-fast: lint
	$(PY) -m pytest -q $(XDIST) -m "not slow"

# The tests whose numbers depend on the CPU's kernels: float comparisons between two code paths (with their stated
# tolerances) and the bit-exactness claims (resume, 1 vs 2 processes, plain vs optimised loop) that hold within one
# machine. `make test-numerics-avx2` runs them again on ATen's AVX2 kernels (other vector widths, other rounding, as
# another CPU would have), so a test that passes on one kernel path only fails wherever it runs (~2-4 min on 2 cores).
NUMERICS_TESTS := tests/test_step_equality.py tests/test_evaluation_clip.py tests/test_evaluation_loss.py \
	tests/test_evaluation_fid.py tests/test_evaluation_gaussian.py tests/test_evaluation_accuracy.py \
	tests/test_models.py tests/test_pipeline.py tests/test_flow.py tests/test_train_multiprocess.py \
	tests/test_train_run.py tests/test_data_encoders.py tests/test_data_prepare.py tests/test_feature_net_reuse.py \
	tests/test_mup.py tests/test_sweep_trunks.py tests/test_cpu_kernels.py

test-numerics-avx2: $(STAMP)
	ATEN_CPU_CAPABILITY=avx2 $(PY) -m pytest -q $(XDIST) $(NUMERICS_TESTS)

# docs/reliability.md from what the bad-input, fault-drill, lock and hold-out tests observe (slow ones included:
# minutes); written only when they all pass.
RELIABILITY_TESTS := tests/test_bad_inputs.py tests/test_evaluation_defects.py tests/test_fault_drills.py \
	tests/test_fault_drills_trunks.py tests/test_hub_hang.py \
	tests/test_locks.py tests/test_sweep_locks.py tests/test_data_holdout.py

reliability: $(STAMP)
	DITLAWS_WRITE_RELIABILITY=1 $(PY) -m pytest -q -p no:xdist $(RELIABILITY_TESTS)
	@echo "wrote docs/reliability.md"

demo: $(STAMP)
	bash scripts/demo.sh $(OUT)

demo-compare: $(STAMP)
	bash scripts/demo_compare.sh $(OUT)

clean:
	rm -rf outputs .pytest_cache .ruff_cache
