"""Runs RecBole's own code as the baseline of a benchmark, in the same invocation.

RecBole and torch live in another Python (they are not dependencies of this project): pass
its interpreter with --recbole-python. The bundled ml-100k files are unpacked for it into a
temporary folder, so both sides read the same data.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT
from shortrec_jax.data.atomic import BUNDLED_DIR

#: RecBole's sequential models the worker runs on leave-one-out (recbole_worker.py, "seq").
SEQUENTIAL_MODELS = ("SASRec", "BERT4Rec")


def run_recbole(
    python: str, model: str, *, epochs: int, fit: bool = False, minutes: float = 0.0
) -> dict[str, Any]:
    """Times RecBole's `model` ("xDeepFM", or one of SEQUENTIAL_MODELS) in its own process.

    xDeepFM: `epochs` epochs after a warm-up, or with fit=True, trained to its best validation
    AUC (at most `epochs` epochs, early stopping) and its best model tested. A sequential
    model: trained on leave-one-out to its best validation NDCG@10 (at most `epochs` epochs,
    stopped after the first validation past `minutes` of fitting) and its best model tested.
    "launched" is the wall time (time.time()) at which its process was started, "finished"
    the time it ended (recbole_worker.py).
    """
    if model in SEQUENTIAL_MODELS:
        mode = ["seq", model, str(minutes)]
    elif model == "xDeepFM":
        mode = ["fit"] if fit else []
    else:
        raise ValueError(f"no RecBole baseline is wired for {model!r}")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "ml-100k"
        target.mkdir()
        for gz in sorted((BUNDLED_DIR / "ml-100k").glob("*.gz")):
            with gzip.open(gz, "rb") as src, open(target / gz.name[:-3], "wb") as dst:
                shutil.copyfileobj(src, dst)
        launched = time.time()
        out = subprocess.run(
            [
                python,
                str(ROOT / "benchmarks" / "recbole_worker.py"),
                tmp,
                str(epochs),
                *mode,
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp,
        )
        finished = time.time()
    if out.returncode != 0:
        raise RuntimeError(f"RecBole baseline failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {**result, "launched": launched, "finished": finished}
