"""Planted problem: ddp-find-unused-parameters. find_unused_parameters=True although every
parameter takes part in every step: DDP walks the autograd graph each iteration for nothing.

    perfdoctor run --nproc-per-node 2 sample_workloads/ddp_unused_parameters.py
"""

import sys

from ddp_common import parse_args, reference_model, train

if __name__ == "__main__":
    sys.argv.append("--find-unused-parameters")
    train(reference_model(), parse_args())
