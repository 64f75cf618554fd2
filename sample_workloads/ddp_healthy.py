"""A healthy 2-rank DDP run on CPU (gloo): the reference CNN with a DistributedSampler.

    perfdoctor run --nproc-per-node 2 sample_workloads/ddp_healthy.py
"""

from ddp_common import parse_args, reference_model, train

if __name__ == "__main__":
    train(reference_model(), parse_args())
