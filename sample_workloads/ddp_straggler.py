"""Planted problem: ddp-straggler. Rank 1 spends 30 ms more on every step (a slower machine or a
noisy neighbour, simulated): every other rank waits for it in the gradient all-reduce.

    perfdoctor run --nproc-per-node 2 sample_workloads/ddp_straggler.py
"""

import sys

from ddp_common import parse_args, reference_model, train

if __name__ == "__main__":
    sys.argv += ["--slow-rank", "1"] if "--slow-rank" not in sys.argv else []
    train(reference_model(), parse_args())
