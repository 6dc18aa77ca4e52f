#!/usr/bin/env python3
"""A real PyTorch Lightning 2.x run for rtrain's fixtures (scripts/capture-lightning-fixtures.sh).

A tiny MLP regressing random data on the CPU, nothing downloaded: Lightning's own progress bar (TQDM, or Rich when
`rich` is installed and --rich is given), its default logger (CSVLogger without tensorboard, TensorBoard's writer
with it), and ModelCheckpoint(every_n_train_steps=..., save_last=True), so the checkpoint directory holds
`epoch=E-step=S.ckpt` files and `last.ckpt`.

    python train.py [--max-steps N] [--save-steps K] [--batches-per-epoch B] [--rich] [--ckpt_path PATH]
"""

import argparse

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Mlp(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))

    def training_step(self, batch, _index):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--save-steps", type=int, default=100)
    ap.add_argument("--batches-per-epoch", type=int, default=88)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--rich", action="store_true")
    ap.add_argument("--ckpt_path", default=None)
    args = ap.parse_args()

    torch.manual_seed(42)
    x = torch.randn(args.batches_per_epoch * 8, 16)
    y = x.sum(dim=1, keepdim=True) * 0.1 + 0.01 * torch.randn(len(x), 1)
    data = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, num_workers=0)
    callbacks = [ModelCheckpoint(every_n_train_steps=args.save_steps, save_top_k=-1, save_last=True)]
    if args.rich:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar())
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=args.max_steps,
        log_every_n_steps=args.log_every,
        callbacks=callbacks,
        enable_model_summary=False,
    )
    trainer.fit(Mlp(), data, ckpt_path=args.ckpt_path)


if __name__ == "__main__":
    main()
