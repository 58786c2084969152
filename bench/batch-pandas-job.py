"""The seed's single-node batch job, as the issue describes it: pandas reads the file, numpy builds the fraud
features, PyTorch (1 thread) scores torch.no_grad() chunks of 4096 rows, pandas writes the file.

Usage: python3 bench/batch-pandas-job.py IN.(csv|jsonl) OUT.(csv|jsonl) WEIGHTS.json
WEIGHTS.json holds the fraud model's layers (exported from its ONNX file by bench/batch.ts), so both jobs score
with the same weights.
"""
import json
import sys

import numpy as np
import pandas as pd
import torch

CATEGORIES = ["grocery", "electronics", "travel", "gaming", "fuel", "restaurant", "jewelry", "online"]
CHUNK = 4096


def build_model(path):
    with open(path) as f:
        layers = json.load(f)["layers"]
    modules = []
    for i, layer in enumerate(layers):
        linear = torch.nn.Linear(layer["in"], layer["out"])
        with torch.no_grad():
            # ONNX Gemm weights are [in, out]; torch keeps [out, in].
            linear.weight.copy_(torch.tensor(layer["weight"], dtype=torch.float32).reshape(layer["in"], layer["out"]).T)
            linear.bias.copy_(torch.tensor(layer["bias"], dtype=torch.float32))
        modules.append(linear)
        modules.append(torch.nn.ReLU() if i < len(layers) - 1 else torch.nn.Sigmoid())
    return torch.nn.Sequential(*modules).eval()


def features(df):
    n = len(df)
    x = np.zeros((n, 2 + len(CATEGORIES)), dtype=np.float32)
    x[:, 0] = np.log1p(df["transaction_amount"].to_numpy(np.float64))
    x[:, 1] = np.log1p(df["time_since_last_txn"].to_numpy(np.float64)) / 10
    codes = pd.Categorical(df["merchant_category"], categories=CATEGORIES).codes
    known = np.nonzero(codes >= 0)[0]
    x[known, 2 + codes[known]] = 1
    return x


def main(inp, out, weights):
    torch.set_num_threads(1)
    jsonl = inp.endswith(".jsonl")
    df = pd.read_json(inp, lines=True) if jsonl else pd.read_csv(inp)
    model = build_model(weights)
    x = features(df)
    probability = np.empty(len(df), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(df), CHUNK):
            probability[start:start + CHUNK] = model(torch.from_numpy(x[start:start + CHUNK]))[:, 0].numpy()
    df["fraud_probability"] = probability.astype(np.float64)
    df["is_fraud"] = probability > 0.7
    if out.endswith(".jsonl"):
        df.to_json(out, orient="records", lines=True)
    else:
        df.to_csv(out, index=False)


if __name__ == "__main__":
    main(*sys.argv[1:4])
