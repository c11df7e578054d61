"""Many slides on a dask cluster: one task a slide, the model loaded once a worker.

`razn segment --workers N` starts a `LocalCluster` of N single-threaded
worker processes; `--scheduler tcp://host:8786` uses a cluster a lab
already runs (start one with `dask scheduler` on one machine and
`dask worker tcp://host:8786 --nthreads 1` on each of the others, every
worker with napari-razn installed and the slides and output folder at the
same paths). A slide that fails comes back as its error; the others finish.
"""

from __future__ import annotations

import os
from pathlib import Path

# Per worker process: model reference -> loaded model.
_MODELS: dict = {}


def _model(reference: str):
    from razn.models import load_model

    if reference not in _MODELS:
        _MODELS[reference] = load_model(reference)
    return _MODELS[reference]


def segment_task(slide_path: str, model_ref: str, out_dir: str, settings: dict) -> dict:
    """A dask task: one slide. Never raises; failures come back as {'error': ...}."""
    from razn.errors import RaznError
    from razn.inference.job import segment_slide

    settings = dict(settings)
    threads = settings.pop("torch_threads", None)
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        return segment_slide(slide_path, _model(model_ref), out_dir, **settings)
    except RaznError as error:
        return {"slide": slide_path, "error": str(error)}
    except Exception as error:  # a worker must report, not die, for one slide
        return {"slide": slide_path, "error": f"{type(error).__name__}: {error}"}


def segment_on_cluster(slides, model_ref, out_dir, settings, *, workers=None, scheduler=None):
    """Yield each slide's summary (or error) as its task finishes."""
    from dask.distributed import Client, LocalCluster, as_completed

    model_ref = str(Path(model_ref).resolve()) if Path(model_ref).is_file() else str(model_ref)
    out_dir = str(Path(out_dir).resolve())
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        client = Client(cluster)
        settings = {**settings, "torch_threads": max(1, (os.cpu_count() or 1) // workers)}
    try:
        futures = [
            client.submit(
                segment_task, str(Path(s).resolve()), model_ref, out_dir, settings, pure=False
            )
            for s in slides
        ]
        for future in as_completed(futures):
            yield future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
