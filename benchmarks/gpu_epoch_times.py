"""Epoch times of ``dsreg train`` on CUDA with bf16, with and without the GPU-resident data path.

    python benchmarks/gpu_epoch_times.py [DATASET] [--epochs 5] [--model image-cnn] [-c train_size=50000]
    python benchmarks/gpu_epoch_times.py --device cpu        # a dry run of the same script on the CPU

Runs ``dsreg train DATASET --device cuda --precision bf16`` twice in this process, once with
``--preload`` (the split held on the GPU, batches gathered there) and once with ``--no-preload``
(DataLoader, pinned memory, non-blocking copies), from one fetched copy; prints each epoch's time and
throughput and the median epoch after the first (which includes warm-up). Default dataset:
``notmnist-synth`` from dsreg-notmnist.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

from click.testing import CliRunner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", default="notmnist-synth")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--model", default="image-cnn")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("-c", "--config", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    import torch

    import dsreg
    from dsreg.cli.app import cli, parse_config

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; run on a GPU machine, or pass --device cpu for a dry run")
    dsreg.fetch(args.dataset, **parse_config(tuple(args.config)))
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"{args.dataset}, model {args.model}, batch {args.batch_size}, {args.precision}, {where}, torch {torch.__version__}")
    for preload in ("--preload", "--no-preload"):
        out = tempfile.mkdtemp(prefix="dsreg-gpu-")
        cmd = [
            "train",
            args.dataset,
            "--model",
            args.model,
            "--epochs",
            str(args.epochs),
            "--batch-size",
            str(args.batch_size),
            "--device",
            args.device,
            "--precision",
            args.precision,
            preload,
            "--out",
            out,
            "--json",
            "--quiet",
        ] + [x for pair in args.config for x in ("-c", pair)]
        result = CliRunner().invoke(cli, cmd, catch_exceptions=False)
        if result.exit_code:
            raise SystemExit(f"dsreg {' '.join(cmd)} failed:\n{result.output}")
        metrics = json.loads(result.stdout)
        times = [row["seconds"] for row in metrics["history"]]
        rates = [row["examples_per_s"] for row in metrics["history"]]
        steady = statistics.median(times[1:]) if len(times) > 1 else times[0]
        print(
            f"{preload:13} data on device: {metrics['settings']['preload']}; epochs (s): "
            + " ".join(f"{t:.2f}" for t in times)
            + f"; median after the first {steady:.3f} s ({statistics.median(rates[1:] or rates):,.0f} ex/s); "
            f"test accuracy {metrics['test']['accuracy']:.2%}"
        )


if __name__ == "__main__":
    main()
