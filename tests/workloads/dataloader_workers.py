"""Two epochs over a Dataset defined here, with num_workers=2 under the multiprocessing context
argv[1] (`fork` or `spawn`); argv[2] == `persistent` keeps the workers between epochs."""

import sys

import torch
from torch.utils.data import DataLoader, Dataset


class Squares(Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, index):
        return torch.full((4,), float(index)), torch.tensor(float(index * index))


def main():
    context = sys.argv[1]
    persistent = sys.argv[2:] == ["persistent"]
    loader = DataLoader(Squares(), batch_size=4, num_workers=2, multiprocessing_context=context, persistent_workers=persistent)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001)
    for epoch in range(2):
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x).squeeze(1), y).backward()
            optimizer.step()
    print("TRAINED")


if __name__ == "__main__":
    main()
