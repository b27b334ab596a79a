"""Embedding on a Ray cluster: `qa index --ray ADDRESS` (the optional extra: pip install article-qa[scale]).

`RayEmbedder` is an embedder like `qa.embedding.Embedder`: the same `id`, the same `dim`, the same vectors,
so the store never knows where its vectors were computed (an index built on Ray is updated on one machine,
and the other way round). Its `embed()` hands the texts to Ray Data; each worker loads the model once and
embeds batch after batch; the vectors come back in the order of the texts. Ray is imported here only, and
only when used: the package installs and starts without it.

Every node needs this package installed (with the same model, when QA_EMBEDDER names a folder).
"""
from __future__ import annotations

import logging
import math
import re
import socket
from typing import Self

import numpy as np

from . import errors
from .embedding import Embedder
from .errors import DistributedError, QAError

log = logging.getLogger(__name__)

LOCAL = "local"          # start a Ray on this machine for this run (even when RAY_ADDRESS is set)
ROWS_PER_CALL = 128      # texts per Ray Data batch: one worker call, small enough to spread a few hundred
CONNECT_TIMEOUT = 5.0    # seconds to reach a cluster's head before saying it is not there
_HOST_PORT = re.compile(r"(?P<host>\[[0-9a-fA-F:]+\]|[^:/\[\]]+):(?P<port>\d+)")


class _EmbedWorker:
    """A Ray Data actor: loads the embedder once, then embeds every batch it is given."""

    def __init__(self, model: str, runtime: str, cache: str | None, threads: int, batch_size: int):
        from . import export
        from . import runtime as onnx_runtime

        # ONNX Runtime takes as many threads as the machine has cores; this worker was given `threads`
        # CPUs by Ray (which sets OMP_NUM_THREADS the same way for torch): more would fight its neighbours
        onnx_runtime.threads = lambda: threads
        embedder = Embedder(model, runtime, cache)
        if embedder.runtime == "onnx":
            # on a fresh node the first worker exports the model to ONNX (once per weights); the others
            # wait for it, rather than each export it too and replace the folder another is loading
            from filelock import FileLock

            root = export.cache_root(cache)
            root.mkdir(parents=True, exist_ok=True)
            with FileLock(str(root / ".ray-export.lock")):
                export.onnx_model(embedder._folder, "embedder", cache)
        self.embedder = embedder.load()
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.embedder.embed([str(t) for t in batch["text"]], batch_size=self.batch_size)
        return {"row": batch["row"], "vector": vectors}


class RayEmbedder:
    """`with RayEmbedder(address="local", cpus=2) as embedder: refresh_index(settings, embedder)`.

    address: "local" (or None) starts a Ray on this machine and shuts it down at close(); "auto" joins
    the Ray already running on this machine (or RAY_ADDRESS); "HOST:PORT" joins a cluster's head (its
    GCS port, 6379 by default); "ray://HOST:10001" goes through Ray Client (needs ray[client]). A cluster
    joined is left running. cpus: at most this many CPUs (a local Ray starts with this many; default:
    all); cpus_per_worker: each worker's share (and its ONNX Runtime threads)."""

    def __init__(self, model: str = "", runtime: str | None = None, cache: str | None = None,
                 address: str | None = LOCAL, cpus: int | None = None, cpus_per_worker: int = 1):
        self.local = Embedder(model, runtime, cache)  # the same id; loaded only if dim is asked before embed()
        self.id = self.local.id
        self.address = (address or LOCAL).strip()
        self.cpus = cpus
        self.cpus_per_worker = max(1, int(cpus_per_worker))
        self._dim: int | None = None
        self._started = False  # this object started (or joined) Ray, so it shuts it down (disconnects)

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self.local.dim
        return self._dim

    def start(self) -> RayEmbedder:
        """Start or join Ray now (embed() does it on first use). A process that is already connected
        to Ray is used as it is."""
        ray = _import_ray()
        if ray.is_initialized():
            return self
        if self.address != LOCAL:
            _check_reachable(self.address)
        options = {"num_cpus": self.cpus} if self.address == LOCAL else {}
        try:
            ray.init(address=self.address, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=log.isEnabledFor(logging.INFO), **options)
        except (Exception, SystemExit) as err:  # noqa: BLE001 - Ray raises many kinds; SystemExit on a GCS timeout
            where = "start a local Ray" if self.address == LOCAL else f"connect to the Ray cluster at {self.address}"
            raise DistributedError(f"could not {where}: {_message(err)}") from None
        self._started = True
        return self

    def close(self) -> None:
        """Shut down the Ray this object started (or disconnect from the cluster it joined)."""
        if self._started:
            self._started = False
            import ray

            ray.shutdown()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def workers(self) -> int:
        """How many workers embed: the cluster's CPUs (at most `cpus`) over each worker's share."""
        import ray

        total = int(ray.cluster_resources().get("CPU", 1))
        if self.cpus:
            total = min(total, self.cpus)
        return max(1, total // self.cpus_per_worker)

    def embed(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text, in the order of `texts`."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.start()
        import ray

        workers = self.workers()
        blocks = min(len(texts), max(workers, math.ceil(len(texts) / ROWS_PER_CALL)))
        rows = math.ceil(len(texts) / blocks)  # one block = one worker call
        ray.data.DataContext.get_current().enable_progress_bars = progress
        # quiet unless -v: Ray Data logs each run, and a failing worker's traceback at length (the error
        # raised here says what went wrong in one line)
        logging.getLogger("ray.data").setLevel(logging.INFO if log.isEnabledFor(logging.INFO) else logging.CRITICAL)
        items = [{"row": i, "text": t} for i, t in enumerate(texts)]
        dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            _EmbedWorker, fn_constructor_args=(self.local.model_ref, self.local.runtime, self.local.cache,
                                               self.cpus_per_worker, batch_size),
            batch_size=rows, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=self.cpus_per_worker)
        out: np.ndarray | None = None
        done = np.zeros(len(texts), dtype=bool)
        try:
            # Ray Data may finish batches in any order: each row carries its index and goes back there
            for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
                vectors = np.asarray(batch["vector"], dtype=np.float32)
                if out is None:
                    out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
                rows_back = np.asarray(batch["row"], dtype=np.int64)
                out[rows_back] = vectors
                done[rows_back] = True
        except Exception as err:  # a worker's QAError is raised as itself, anything else wrapped
            cause = _qa_error(err)
            if cause is not None:
                raise cause from None
            raise DistributedError(f"embedding on Ray failed: {_message(err)}") from err
        if out is None or not done.all():
            raise DistributedError(f"embedding on Ray returned {int(done.sum())} of {len(texts)} vectors")
        self._dim = out.shape[1]
        return out


def _import_ray():
    try:
        import ray
        import ray.data  # the [data] part: pyarrow and friends
    except ImportError as err:
        raise DistributedError(f"Ray is not installed ({err.name or err}): pip install 'article-qa[scale]'") from None
    return ray


def _check_reachable(address: str) -> None:
    """HOST:PORT must answer within seconds: Ray itself retries a silent address for minutes."""
    match = _HOST_PORT.fullmatch(address)
    if match is None:  # "auto", "ray://...": Ray says quickly what is wrong
        return
    host = match["host"].strip("[]")
    try:
        with socket.create_connection((host, int(match["port"])), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as err:
        raise DistributedError(f"no Ray cluster answers at {address}: {err.strerror or err}") from None


def _qa_error(err: BaseException) -> QAError | None:
    """The QAError a worker raised (a model that cannot be loaded), as its own class, wherever Ray wrapped it."""
    chain: list[BaseException] = []
    while err is not None and all(err is not e for e in chain):
        chain.append(err)
        err = getattr(err, "cause", None) or err.__cause__
    for e in chain:
        # Ray hands a worker's error back as text, whose last line is "qa.errors.Kind: message"
        match = re.fullmatch(r"qa\.errors\.(\w+): (.+)", _message(e))
        kind = getattr(errors, match[1], None) if match else None
        if isinstance(kind, type) and issubclass(kind, QAError):
            return kind(match[2])
        if isinstance(e, QAError):
            return e
    return None


def _message(err: BaseException) -> str:
    """One line: Ray's messages run over several, with tracebacks."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__
