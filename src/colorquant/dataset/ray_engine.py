"""``engine="ray"``: the per-batch work of :mod:`.work` on Ray Data, on one machine or a cluster.

A cluster differs from one machine in ways that must not fail silently, so before any work:

- the address (``RAY_ADDRESS``) is tried with a plain TCP connection first: an unreachable one
  is refused in one line within :data:`CONNECT_SECONDS`, instead of Ray's minutes of retries;
- without ``RAY_ADDRESS``, a cluster that ``ray start`` runs on this machine is joined (Ray's
  own rule; no ``num_cpus`` is passed then), else a local instance is started for the job;
- every alive node runs a probe (:func:`probe`): colorquant must import there, in the driver's
  version; SRC's first item must be readable there; and a probe file the driver wrote into
  DST must be visible there, which it is only when the nodes share DST (a shared file system
  mounted at the same path, or an object store). A failing node is refused in one line that
  names it and the path;
- during the job, every output a task reports is checked at DST (:func:`check_output`) before
  the manifest records it, so that a node that joined later and sees another DST stops the
  job instead of losing its outputs;
- Ray's own lines go to stderr (:func:`stdout_to_stderr`): stdout keeps ``--json``'s object.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import __version__
from .._checks import InputError
from .shards import process_shard
from .sources import FileItem, Plan, ShardItem
from .storage import StorageOptions, delete, is_url, join, read_bytes, size_of, write_bytes
from .work import Settings, process_files

__all__ = [
    "CONNECT_SECONDS",
    "RayOptions",
    "check_address",
    "check_output",
    "check_resources",
    "import_ray",
    "probe",
    "ray_batch",
    "ray_session",
    "run_ray",
    "stdout_to_stderr",
]

log = logging.getLogger(__name__)

#: How long the driver tries to reach RAY_ADDRESS before refusing it.
CONNECT_SECONDS = 5.0
#: How long the probes of all nodes may take together.
PROBE_SECONDS = 120.0
PROBE_PREFIX = ".colorquant-probe-"
#: Rows (files or shards) handed to Ray Data at a time.
CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class RayOptions:
    """How the Ray engine asks for resources.

    Attributes:
        cpus_per_task: CPUs Ray reserves for each task (a batch of files, or a shard), > 0.
        gpus_per_task: GPUs each task asks for (``--device cuda``: 1 unless given), >= 0.
        concurrency: tasks at most at once (``None``: as many as the resources allow; the
            job's ``workers`` on a local instance started for it).
    """

    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    concurrency: int | None = None


def import_ray() -> Any:
    """Ray and Ray Data, or a one-line :class:`InputError` naming the package to install."""
    try:
        import ray
        import ray.data  # the job needs Ray Data, not only Ray's core
    except ImportError:
        raise InputError(
            "--engine ray needs Ray, which is not installed here: "
            "pip install 'colorquant[ray]' (ray[data])"
        ) from None
    return ray


def check_address(address: str, timeout: float = CONNECT_SECONDS) -> None:
    """Refuse, in one line and within ``timeout`` seconds, a Ray address nothing listens on.

    ``"auto"`` and ``"local"`` are Ray's to resolve; ``host:port`` and ``ray://host:port`` are
    tried with a TCP connection.

    Raises:
        InputError: the message names the address and what the connection said.
    """
    if address in ("auto", "local"):
        return
    target = address.split("://", 1)[-1].rstrip("/")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"RAY_ADDRESS {address!r}: not host:port (or ray://host:port, auto)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as err:
        reason = "no answer" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise InputError(
            f"RAY_ADDRESS {address!r}: cannot reach a Ray cluster there ({reason}, tried "
            f"{timeout:g} s); start it with ray start --head, or fix the address"
        ) from None


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send whatever is written to file descriptor 1 (Ray's messages, its C++ logs) to
    stderr meanwhile, so that stdout holds only what the command prints itself."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _connect(ray: Any, workers: int) -> None:
    """Join RAY_ADDRESS's cluster, or the one ``ray start`` runs on this machine (with its own
    resources), or start a local instance of ``workers`` CPUs."""
    address = os.environ.get("RAY_ADDRESS") or None
    common: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    if address:
        check_address(address)
        ray.init(address=address, **common)
        return
    try:
        ray.init(num_cpus=workers, **common)
    except ValueError as err:  # a cluster runs on this machine: joined, with its resources
        if "must not be provided" not in str(err):
            raise
        ray.init(**common)


# -- the probe of every node --------------------------------------------------------------------


def probe(src: str | None, token_path: str, token: str, options: StorageOptions) -> dict[str, Any]:
    """What a node sees: its colorquant version, whether it reads ``src`` and the token file.

    Runs as a Ray task on each node. Never raises for what it checks: the answers come back.
    """
    import colorquant

    answer: dict[str, Any] = {
        "version": colorquant.__version__,
        "host": socket.gethostname(),
        "src": None,
        "dst": None,
    }
    if src is not None:
        try:
            if is_url(src):
                if size_of(src, options) is None:
                    raise FileNotFoundError(src)
            else:
                with open(src, "rb") as fh:
                    fh.read(1)
        except OSError as err:
            answer["src"] = f"cannot read {src} ({err.strerror or type(err).__name__})"
    try:
        if is_url(token_path):
            seen = read_bytes(token_path, options).decode()
        else:
            with open(token_path, encoding="utf-8") as fh:
                seen = fh.read()
        if seen != token:
            answer["dst"] = f"{token_path} holds another job's probe"
    except OSError:
        answer["dst"] = "does not see the probe file the driver wrote there"
    return answer


def check_nodes(ray: Any, plan: Plan, options: StorageOptions) -> int:
    """Probe every alive node (:func:`probe`); refuse the job, naming the node and the path,
    if one cannot run it. Returns the number of nodes.

    Raises:
        InputError: a node without colorquant, of another version, or that cannot read SRC or
            see DST.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    token_path = join(plan.root, f"{PROBE_PREFIX}{token}")
    if is_url(token_path):
        write_bytes(token_path, token.encode(), options)
    else:
        with open(token_path, "w", encoding="utf-8") as fh:
            fh.write(token)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        task = ray.remote(probe)
        pending = {
            n["NodeID"]: task.options(
                num_cpus=0,
                max_retries=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
            ).remote(plan.first_source(), token_path, token, options)
            for n in nodes
        }
        for node in nodes:
            name = f"node {node['NodeID'][:8]} ({node.get('NodeManagerAddress', '?')})"
            try:
                answer = ray.get(pending[node["NodeID"]], timeout=PROBE_SECONDS)
            except Exception as err:
                text = " ".join(str(err).split())
                cause = "colorquant is not installed there" if "colorquant" in text else text
                raise InputError(
                    f"{name} cannot run the job: {cause[:300]}; install colorquant "
                    f"{__version__} on every node"
                ) from None
            if answer["version"] != __version__:
                raise InputError(
                    f"{name} has colorquant {answer['version']}, this driver {__version__}: "
                    "install the same version on every node"
                )
            if answer["src"]:
                raise InputError(
                    f"{name} {answer['src']}: every node must read SRC at the same path "
                    "(a shared file system or an object store)"
                )
            if answer["dst"]:
                raise InputError(
                    f"{name} {answer['dst']} ({plan.root}): every node must write DST at the "
                    "same path (a shared file system or an object store)"
                )
        return len(nodes)
    finally:
        if is_url(token_path):
            with contextlib.suppress(OSError):
                delete(token_path, options)
        else:
            with contextlib.suppress(OSError):
                os.unlink(token_path)


def check_resources(ray: Any, resources: RayOptions) -> None:
    """Refuse a task no node can run (Ray would wait for it forever): more CPUs or GPUs per
    task than the largest node has.

    Raises:
        InputError: naming what is asked and what the largest node has.
    """
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    for key, asked, flag in (
        ("CPU", resources.cpus_per_task, "--cpus-per-task"),
        ("GPU", resources.gpus_per_task, "--gpus-per-task (1 with --device cuda)"),
    ):
        most = max((float(n.get(key, 0)) for n in nodes), default=0.0)
        if asked > most:
            raise InputError(
                f"each task asks for {asked:g} {key}s ({flag}) and the cluster's largest node "
                f"has {most:g}: no task could run"
            )


def check_output(record: dict[str, Any], options: StorageOptions) -> None:
    """Refuse a record whose output is not at DST with the size the task reported.

    Raises:
        InputError: the message names the output, the node that wrote it, and the remedy.
    """
    if record.get("status") not in ("ok", "copied") or "output" not in record:
        return
    size = record.get("shard_bytes", record.get("bytes_out", record.get("bytes")))
    found = size_of(str(record["output"]), options)
    if found is None or (size is not None and found != size):
        where = f" by node {record['node']}" if "node" in record else ""
        state = "missing" if found is None else f"{found} bytes, not {size}"
        raise InputError(
            f"{record['output']}: written{where} but {state} at DST: the nodes do not share "
            "DST (a shared file system or an object store is required)"
        )


# -- the job ------------------------------------------------------------------------------------


def ray_batch(batch: dict[str, Any], settings: Settings, kind: str) -> dict[str, Any]:
    """The Ray Data ``map_batches`` function: a batch of rows ``name, src, dst, copy`` to
    records.

    Runs :func:`.work.process_files` (or :func:`.work.process_shard` per row) and returns a
    column ``record`` of JSON strings, each naming the node that wrote it (``"node"``).
    """
    import ray

    names, sources, targets = (list(batch[c]) for c in ("name", "src", "dst"))
    records: list[dict[str, Any]]
    if kind == "shards":
        records = [
            process_shard(ShardItem(str(n), str(s), str(d)), settings)
            for n, s, d in zip(names, sources, targets, strict=True)
        ]
    else:
        copies = [bool(c) for c in batch["copy"]]
        files = [
            FileItem(str(n), str(s), str(d), c)
            for n, s, d, c in zip(names, sources, targets, copies, strict=True)
        ]
        records = process_files(files, settings)
    node = ray.get_runtime_context().get_node_id()[:8]
    return {"record": np.array([json.dumps({**r, "node": node}) for r in records], dtype=object)}


@contextlib.contextmanager
def ray_session(
    ray: Any, plan: Plan, workers: int, resources: RayOptions, options: StorageOptions
) -> Iterator[None]:
    """Ray connected (or a local instance started, shut down at the end) and checked: the
    resources a task asks for (:func:`check_resources`) and every node (:func:`check_nodes`).
    It runs before the job takes DST's lock and writes its manifest, so that a job Ray refuses
    writes nothing into DST (a DST folder made for the probe is removed again). Ray's lines go
    to stderr meanwhile (:func:`stdout_to_stderr`).

    Raises:
        InputError: an unreachable RAY_ADDRESS, a task no node can run, a node that cannot run
            the job.
        ConnectionError: Ray's own, when it cannot connect to the cluster.
    """
    with stdout_to_stderr():
        started = not ray.is_initialized()
        if started:
            _connect(ray, workers)
        try:
            check_resources(ray, resources)
            local = not is_url(plan.root)
            if local and os.path.exists(plan.root) and not os.path.isdir(plan.root):
                raise InputError(f"DST {str(plan.root)!r}: exists and is not a folder")
            made = local and not os.path.isdir(plan.root)
            if made:
                os.makedirs(plan.root, exist_ok=True)  # for the probe file; removed after
            try:
                check_nodes(ray, plan, options)
            finally:
                if made:
                    with contextlib.suppress(OSError):
                        os.rmdir(plan.root)
            yield
        finally:
            if started:
                ray.shutdown()


def run_ray(
    ray: Any,
    plan: Plan,
    items: Iterable[Any],
    settings: Settings,
    batch_size: int,
    resources: RayOptions,
    on_record: Callable[[dict[str, Any]], None],
) -> None:
    """Run ``items`` (files, in batches of ``batch_size``, or shards) on Ray Data, within
    :func:`ray_session`; ``on_record`` gets each record after its output was checked at DST
    (:func:`check_output`)."""
    context = ray.data.DataContext.get_current()
    for flag in ("enable_progress_bars", "enable_operator_progress_bars"):
        if hasattr(context, flag):
            setattr(context, flag, False)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    function: Any = ray_batch  # Ray's stubs want a one-argument function
    extra: dict[str, Any] = {}
    if resources.gpus_per_task:
        extra["num_gpus"] = resources.gpus_per_task
    # Rows go to Ray CHUNK_ROWS at a time, read from the plan as they go: the driver never
    # holds them all.
    source = iter(items)
    while chunk := list(itertools.islice(source, CHUNK_ROWS)):
        rows = [
            {"name": i.name, "src": i.src, "dst": i.dst, "copy": getattr(i, "copy", False)}
            for i in chunk
        ]
        del chunk
        dataset = ray.data.from_items(rows).map_batches(
            function,
            batch_size=1 if plan.kind == "shards" else batch_size,
            batch_format="numpy",
            fn_kwargs={"settings": settings, "kind": plan.kind},
            num_cpus=resources.cpus_per_task,
            concurrency=resources.concurrency,
            **extra,
        )
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for text in batch["record"]:
                record = json.loads(text)
                check_output(record, settings.storage_options)
                on_record(record)
