"""Test-wide settings.

Offline: a forgotten Hub call otherwise retries for ~25 s. One intra-op thread: the test models are tiny, and
with two threads on a busy 2-core machine a step can take 50x longer (OpenMP workers wait on each other); the
environment variable also reaches the subprocesses that the CLI and multi-process tests start.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_configure(config):
    """The reliability document is collected in the test process itself: pytest-xdist workers would each write a
    part of it."""
    if os.environ.get("DITLAWS_WRITE_RELIABILITY") == "1" and config.getoption("numprocesses", None):
        raise pytest.UsageError("DITLAWS_WRITE_RELIABILITY=1 needs the tests in one process: run without -n "
                                "(`make reliability` does)")


def pytest_runtest_logreport(report):
    """Count each test's outcome per module for docs/reliability.md (the call phase; a skip or error in set-up)."""
    if os.environ.get("DITLAWS_WRITE_RELIABILITY") == "1" and (report.when == "call" or report.outcome != "passed"):
        import reliability_report

        reliability_report.record_outcome(report.nodeid.split("::")[0], report.outcome)


def pytest_sessionfinish(session, exitstatus):
    """With DITLAWS_WRITE_RELIABILITY=1, write docs/reliability.md from what the tests recorded."""
    if os.environ.get("DITLAWS_WRITE_RELIABILITY") == "1" and exitstatus == 0:
        from pathlib import Path

        import reliability_report

        reliability_report.write(Path(__file__).resolve().parents[1] / "docs" / "reliability.md")
