"""``faml-tomo train-misalignment``: train the strong and weak misalignment
networks on simulated tomograms.

Example (the run that made the shipped weights, see
``faml_tomo/models/MODEL_CARD.md``)::

    faml-tomo train-misalignment --out faml_tomo/models --seed 7 \\
        --n-tomograms 300 --n-val 40 --epochs 30 --cache .cache/misalignment

Interrupted?  Run the same command with ``--resume``: cached specimens are
reused and training continues from the last epoch's checkpoint.
"""

import argparse
import logging
import os
import time
from pathlib import Path

from ..errors import InputError
from ..io.jobjson import write_job_json

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train-misalignment",
        help="train the misalignment networks on simulated data",
        description="Simulate aligned, weakly and strongly misaligned tomograms "
        "(bananas, twisters, birds and the general error model; 7-20 Å/px, "
        "5-15 nm beads, varied dose, thickness and tilt schemes), extract "
        "bead boxes as at inference, train the strong network and then the "
        "weak one from it, and validate on held-out tomograms. Writes "
        "strong.keras, weak.keras, metrics.json and job.json.",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="data and training seed")
    p.add_argument(
        "--n-tomograms",
        type=int,
        default=300,
        dest="n_train",
        help="training specimens; each gives an aligned, a weak and a strong "
        "tomogram (default 300)",
    )
    p.add_argument(
        "--n-val", type=int, default=40, help="held-out validation specimens (default 40)"
    )
    p.add_argument(
        "--n-fine",
        type=int,
        default=0,
        help="extra training specimens at fine sampling, the bead spanning >= 16 px (default 0)",
    )
    p.add_argument("--epochs", type=int, default=30, help="maximum epochs per network")
    p.add_argument("--steps", type=int, default=150, help="batches per epoch (default 150)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--cache",
        type=Path,
        default=Path(".cache/misalignment"),
        help="folder for simulated shards and checkpoints (default .cache/misalignment)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --cache")
    p.add_argument("--workers", type=int, default=2, help="processes simulating data (default 2)")
    p.add_argument("--threads", type=int, default=2, help="TensorFlow threads (default 2)")
    p.add_argument(
        "--lr-patience",
        type=int,
        default=2,
        help="epochs without a better validation loss before the learning rate "
        "drops 10x (default 2; more for a small, noisy validation set)",
    )
    p.add_argument(
        "--stop-patience",
        type=int,
        default=5,
        help="epochs without a better validation loss before training stops (default 5)",
    )
    p.add_argument(
        "--log",
        type=Path,
        default=None,
        help="progress log file (default <cache>/train_seed<seed>.log)",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..misalignment.training import train_misalignment

    if args.workers < 1 or args.threads < 1:
        raise InputError("--workers and --threads must be >= 1")
    if args.lr_patience < 1 or args.stop_patience < 1:
        raise InputError("--lr-patience and --stop-patience must be >= 1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    log_path = args.log or Path(args.cache) / f"train_seed{args.seed}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        with open(log_path, "a") as fh:
            fh.write(f"{stamp} {line}\n")
        logger.info(line)

    t0 = time.perf_counter()
    log(
        f"train-misalignment seed {args.seed}: {args.n_train} training and "
        f"{args.n_val} validation specimens, up to {args.epochs} epochs x {args.steps} "
        f"batches of {args.batch_size}{' (resume)' if args.resume else ''}"
    )
    result = train_misalignment(
        args.out,
        seed=args.seed,
        n_train=args.n_train,
        n_val=args.n_val,
        epochs=args.epochs,
        steps=args.steps,
        batch_size=args.batch_size,
        cache=args.cache,
        resume=args.resume,
        workers=args.workers,
        threads=args.threads,
        log=log,
        lr_patience=args.lr_patience,
        stop_patience=args.stop_patience,
        n_fine=args.n_fine,
    )
    elapsed = time.perf_counter() - t0
    params = {k: v for k, v in vars(args).items() if k != "func"}
    write_job_json(
        Path(args.out) / "train_job.json",
        "train-misalignment",
        params,
        seed=args.seed,
        extra={**result, "seconds": round(elapsed, 1)},
    )
    v = result["validation"]
    print(
        f"trained {args.out}/strong.keras and weak.keras in {elapsed / 60:.1f} min; "
        f"held-out tomograms: strong flagged {v['tomo_strong_flagged']:.1%}, aligned "
        f"kept {v['tomo_aligned_kept']:.1%}"
    )
    log(f"done in {elapsed:.0f} s")
    return 0
