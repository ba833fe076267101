"""Extract and cache backbone features, on one process or many (scale-out).

    python scripts/extract.py --dataset SRC [--backbone NAME] [--no-pretrained] [--engine E]
                              [--precision P]
    torchrun --nproc_per_node N scripts/extract.py --dataset SRC ...        # N CPU processes
    accelerate launch --multi_gpu --num_processes N scripts/extract.py ...  # N GPUs

Each process extracts its contiguous shard of the dataset; the main process gathers the
shards into the same feature cache entry that scripts/train.py reads, so training with the
same dataset, backbone and --cache-dir afterwards runs no backbone at all. The cache
directory must be visible to every process (one machine, or a shared file system).
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import timedelta

from . import (
    add_backbone_args,
    add_data_args,
    add_output_args,
    add_runtime_args,
    run,
    setup_logging,
)

logger = logging.getLogger("cervix_hf.extract")
BARRIER_TIMEOUT = timedelta(hours=12)  # a rank may wait this long for the slowest shard


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_args(p, grouping_help="as for scripts/train.py (does not change the features)")
    add_backbone_args(p)
    add_runtime_args(p, precision=True)
    add_output_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code. Prints the cache entry (main process only)."""
    args = parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        import torch
        from accelerate import PartialState

        from cervix_hf.data import load_cells
        from cervix_hf.features import create_backbone, extract_sharded, resolve_device

        device = resolve_device(args.device)
        state = PartialState(cpu=device.type == "cpu", timeout=BARRIER_TIMEOUT)
        if device.type == "cuda" and state.num_processes > 1:
            device = state.device  # this process's own GPU
        # the main process first: it downloads the data and weights, writes the datasets
        # cache files and exports the ONNX trunk; the others then find them
        with state.main_process_first():
            data = load_cells(
                args.dataset, revision=args.revision, split=args.split, grouping=args.grouping
            )
            backbone = create_backbone(
                args.backbone,
                pretrained=args.pretrained,
                revision=args.backbone_revision,
                init_seed=args.init_seed,
                weights_file=args.backbone_weights,
                device=device,
                engine=args.engine,
                precision=args.precision,
                cache_dir=args.cache_dir,
            )
        logger.info(
            "Rank %d of %d: %s on %s (%s %s, %d threads)",
            state.process_index,
            state.num_processes,
            backbone.name,
            backbone.device,
            backbone.engine,
            backbone.precision,
            backbone.plan.threads if backbone.plan else torch.get_num_threads(),
        )
        entry = extract_sharded(
            backbone,
            data.dataset,
            rank=state.process_index,
            world_size=state.num_processes,
            barrier=state.wait_for_everyone,
            cache_dir=args.cache_dir,
            fingerprint=data.fingerprint,
            batch_size=args.batch_size,
            progress=args.progress and state.is_local_main_process,
        )
        if state.is_main_process:
            print(json.dumps({"cache_entry": str(entry.path), "shape": list(entry.shape)}))
        if state.num_processes > 1:
            state.destroy_process_group()
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
