"""Task 2 container entry: segment every image of /medico2020 into /mask/<stem>.png and print the timings.

``medico submit --task efficiency`` copies this file into the Docker build context as ``medico_entry.py``.
It needs torch, numpy, pillow and the medico package installed in the image. It prints ``NAME - SECONDS``
per image and ``Mean FPS: X`` last, as the organisers' sample did. The folders and the weights come from
arguments or MEDICO_INPUT / MEDICO_OUTPUT / MEDICO_WEIGHTS, so it also runs outside a container. The image
runs only built-in models: a checkpoint naming a file or module spec is refused (there is no ``--model`` here). A
plugin's model comes as an exported ONNX file instead (``/weights/model.onnx``), which needs no plugin code and runs in
a graph runtime (``--runtime auto`` picks the fastest installed for an ``.onnx`` file; MEDICO_RUNTIME).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    """Predict and write every mask; per-image seconds cover reading, prediction and writing the mask.

    Returns the exit status: 0, or a medico error's code after printing its message on one line on stderr.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=Path(os.environ.get("MEDICO_INPUT", "/medico2020")))
    parser.add_argument("--output", type=Path, default=Path(os.environ.get("MEDICO_OUTPUT", "/mask")))
    parser.add_argument("--weights", type=Path, default=Path(os.environ.get("MEDICO_WEIGHTS", "/weights/model.pt")))
    parser.add_argument("--device", default=os.environ.get("MEDICO_DEVICE", "auto"))
    # auto: bf16 where the device computes it natively (medico.engine.runtime), as task 2 is about speed.
    parser.add_argument("--precision", default=os.environ.get("MEDICO_PRECISION", "auto"))
    parser.add_argument("--runtime", default=os.environ.get("MEDICO_RUNTIME", "auto"))
    parser.add_argument("--tta", default=os.environ.get("MEDICO_TTA", "none"))  # medico.engine.tta.TTA_MODES
    args = parser.parse_args(argv)

    from medico.errors import MedicoError

    try:
        return _segment(args)
    except MedicoError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return error.exit_code


def _segment(args: argparse.Namespace) -> int:
    """Segment every image of ``args.input`` into ``args.output``, printing each image's seconds and the mean FPS."""
    from medico.data.io import list_images, read_rgb
    from medico.engine.runtimes import load_predictor
    from medico.submission.writer import mask_png

    predictor = load_predictor(
        args.weights, runtime=args.runtime, device=args.device, precision=args.precision, tta=args.tta
    )
    predictor.masks([np.zeros((predictor.input_size, predictor.input_size, 3), np.uint8)])  # warm-up, untimed
    args.output.mkdir(parents=True, exist_ok=True)
    images = list_images(args.input)
    total = 0.0
    for path in images:
        start = time.perf_counter()
        mask = predictor.masks([read_rgb(path)])[0]
        (args.output / f"{path.stem}.png").write_bytes(mask_png(mask))
        seconds = time.perf_counter() - start
        total += seconds
        print(f"{path.name} - {seconds:.6f}", flush=True)
    print(f"Mean FPS: {len(images) / total if total > 0 else 0.0:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
