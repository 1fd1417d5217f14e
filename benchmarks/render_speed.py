"""Synthetic dataset throughput: render + JPEG-encode + write N hands in FreiHAND's layout. Prints JSON.

python benchmarks/render_speed.py [--n 1000] [--workers W]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from handpose.data.synthetic import write_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="images to write (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=None, help="render processes (default: all cores)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tic = time.perf_counter()
        write_dataset(Path(tmp) / "freihand", n=args.n, seed=0, workers=args.workers, progress=False)
        seconds = time.perf_counter() - tic
    print(
        json.dumps(
            {
                "images": args.n,
                "workers": args.workers or os.cpu_count(),
                "seconds": round(seconds, 2),
                "images_per_s": round(args.n / seconds, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
