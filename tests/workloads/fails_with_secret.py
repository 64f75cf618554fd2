"""Trains a few steps, then fails the way a job loses its database: an exception whose message
holds a connection URL with its password and a bearer token (from --db-password and --api-key;
any other argument is ignored)."""

import argparse

import torch
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--db-password")
parser.add_argument("--api-key")
args, _ = parser.parse_known_args()
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loader = DataLoader(TensorDataset(torch.randn(64, 8), torch.randn(64, 1)), batch_size=8)
for x, y in loader:
    loss = torch.nn.functional.mse_loss(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
raise RuntimeError(
    f"could not save metrics to postgresql://trainer:{args.db_password}@db.internal:5432/runs "
    f"(headers {{'Authorization': 'Bearer {args.api_key}'}})"
)
