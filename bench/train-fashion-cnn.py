"""Bench-only: trains the issue's small Fashion-MNIST CNN with Debian's python3-torch and exports it to ONNX.

conv 3x3 x32 -> ReLU -> maxpool 2 -> conv 3x3 x64 -> ReLU -> maxpool 2 -> fc 256 -> ReLU -> fc 10, input [N, 784] pixels
scaled to [0, 1] (as the project's fashion-mnist: data sets), output `logits` [N, 10]. Trained on all 60 000 train images
(Adam, batch 128, learning rate 2e-3 cosine-decayed to 0, dropout 0.25 before each fc). t10k is scored after each
epoch and the model exported each time (the last epoch is the result; nothing is selected on t10k).
Usage: /usr/bin/python3 bench/train-fashion-cnn.py [--epochs 5] [--lr 0.002] [--seed 1] [--batch-norm] [--shift N]
       [--out bench/models/fashion-cnn.onnx]
"""
import argparse
import gzip
import json
import math
import time

import numpy as np
import torch
from torch import nn

DATA = "/usr/share/datasets/fashion-mnist"


def idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class FashionCnn(nn.Module):
    def __init__(self, dropout: float, batch_norm: bool = False) -> None:
        super().__init__()
        # Batch normalization after each convolution speeds up training; torch.onnx.export (eval mode) folds it into the
        # convolution's weights and bias, so the exported graph keeps the layer shape (Conv, Relu, MaxPool, Gemm).
        norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3), norm(32), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), norm(64), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(64 * 5 * 5, 256), nn.ReLU(), nn.Dropout(dropout), nn.Linear(256, 10)
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(pixels.reshape(-1, 1, 28, 28)), 1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.25)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-norm", action="store_true", help="BatchNorm2d after each conv (folded into it at export)")
    parser.add_argument("--shift", type=int, default=0, help="random shifts of up to N pixels per axis (augmentation)")
    parser.add_argument("--out", default="bench/models/fashion-cnn.onnx")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    x = torch.from_numpy(idx(f"{DATA}/train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255)
    y = torch.from_numpy(idx(f"{DATA}/train-labels-idx1-ubyte.gz").astype(np.int64))
    tx = torch.from_numpy(idx(f"{DATA}/t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255)
    ty = torch.from_numpy(idx(f"{DATA}/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    # channels_last runs the convolutions' training steps ~30% faster on this CPU (oneDNN).
    model = FashionCnn(args.dropout, args.batch_norm).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = args.epochs * math.ceil(len(x) / 128)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    started = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            batch = order[i : i + 128]
            optimizer.zero_grad()
            inputs = shifted(x[batch], args.shift) if args.shift > 0 else x[batch]
            loss = nn.functional.cross_entropy(model(inputs), y[batch])
            loss.backward()
            optimizer.step()
            schedule.step()
            if (i // 128) % 100 == 0:
                print(f"  step {i // 128}: loss {loss.item():.4f}, {time.time() - started:.0f} s", flush=True)
        model.eval()
        with torch.no_grad():
            accuracy = (model(tx).argmax(1) == ty).float().mean().item()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}, t10k accuracy {accuracy * 100:.2f}%, {time.time() - started:.0f} s", flush=True)
        # Exported after every epoch (the last one is the result), so a slow machine still leaves a usable model.
        info = {"accuracy": accuracy, "epochs": epoch + 1, "of_epochs": args.epochs, "seed": args.seed, "seconds": time.time() - started}
        export(model, tx, args.out, {**info, "lr": args.lr, "dropout": args.dropout, "batch_norm": args.batch_norm, "shift": args.shift})


def shifted(pixels: torch.Tensor, most: int) -> torch.Tensor:
    """Each [784] image moved by a random (dy, dx) in [-most, most]^2, zero-filled (background is 0)."""
    images = nn.functional.pad(pixels.reshape(-1, 28, 28), (most, most, most, most))
    dy = torch.randint(0, 2 * most + 1, (len(pixels),))
    dx = torch.randint(0, 2 * most + 1, (len(pixels),))
    rows = (dy[:, None] + torch.arange(28)[None, :])[:, :, None]
    cols = (dx[:, None] + torch.arange(28)[None, :])[:, None, :]
    return images[torch.arange(len(pixels))[:, None, None], rows, cols].reshape(-1, 784)


def export(model: nn.Module, tx: torch.Tensor, out: str, info: dict) -> None:
    exported = FashionCnn(0, any(isinstance(m, nn.BatchNorm2d) for m in model.modules())).eval()
    exported.load_state_dict(model.state_dict())
    torch.onnx.export(
        exported,
        tx[:1],
        out,
        input_names=["pixels"],
        output_names=["logits"],
        dynamic_axes={"pixels": {0: "N"}, "logits": {0: "N"}},
        opset_version=13,
    )
    with open(out + ".json", "w") as f:
        json.dump(info, f)


if __name__ == "__main__":
    main()
