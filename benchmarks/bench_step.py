"""The training step's speed against diffusers' DiT and the matmul peak: a thin wrapper of `ditlaws bench`.

    python benchmarks/bench_step.py [--quick] [--out docs/perf/after.json] [--threads N] [--only step,demo]
"""

import sys

from ditlaws.bench import main

if __name__ == "__main__":
    sys.exit(main())
