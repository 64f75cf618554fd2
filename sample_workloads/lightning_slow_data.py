"""Planted problem: dataloader-bottleneck, under PyTorch Lightning. Lightning runs the forward and
backward inside `optimizer.step(closure)`; perfdoctor still charges them to forward and backward,
and the slow DataLoader (a sleep in __getitem__, num_workers=0) gives the same finding as in a
plain loop. Needs `lightning` (pip install lightning)."""

import argparse

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from reference_cnn import ReferenceCNN
from slow_storage import SlowStorageDataset


def main() -> None:
    import lightning as L

    class Classifier(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = ReferenceCNN()

        def training_step(self, batch, batch_idx):
            images, labels = batch
            return F.nll_loss(self.model(images), labels)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters())

    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=64 * 40)
    parser.add_argument("--read-ms", type=float, default=0.5)
    args = parser.parse_args()
    torch.manual_seed(0)
    loader = DataLoader(SlowStorageDataset(args.samples, args.read_ms), batch_size=64, num_workers=0)
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(Classifier(), loader)


if __name__ == "__main__":
    main()
