"""The reference workload with its own step timer, for benchmarks/overhead.py: the same script
runs bare and under perfdoctor, and it times its steps itself in both cases."""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sample_workloads"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from reference_cnn import ReferenceCNN, synthetic_mnist  # noqa: E402


def main(out: str, steps: int) -> None:
    torch.manual_seed(0)
    model = ReferenceCNN()
    optimizer = torch.optim.Adam(model.parameters())
    loader = DataLoader(synthetic_mnist(64 * steps), batch_size=64, shuffle=True)
    ends = [time.perf_counter()]
    for images, labels in loader:
        optimizer.zero_grad()
        F.nll_loss(model(images), labels).backward()
        optimizer.step()
        ends.append(time.perf_counter())
    Path(out).write_text(json.dumps([(b - a) * 1e3 for a, b in zip(ends, ends[1:])]))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
