"""Where points run: in this process, in a local process pool, or as Ray tasks.

Workers return a point's files as bytes (plus its wall time) and never touch the store,
so a Ray cluster needs no shared filesystem and a killed worker cannot corrupt results.
Task inputs and outputs are plain JSON text and bytes.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import signal
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Any

from workload_eval import interrupts
from workload_eval.errors import UserError
from workload_eval.limits import ALL_LIMITS
from workload_eval.quiet import captured_output


@dataclass
class Outcome:
    """A finished task: the point's files, or why it failed."""

    task_id: str
    files: dict[str, bytes] | None = None
    wall_s: float = 0.0
    error: str | None = None
    user_error: bool = False  # the error is the input's (a UserError), not a crash


def run_point(spec_json: str) -> dict[str, Any]:
    """Execute one RunSpec (JSON text); return its files or an error, never raise."""
    t0 = time.perf_counter()
    try:
        from workload_eval.runner import RunSpec, execute, run_files

        spec = RunSpec.model_validate_json(spec_json)
        result = execute(spec, progress=False)
        if result.interrupted or result.stop_requested:  # Ctrl-C: stop the sweep, store nothing
            raise KeyboardInterrupt
        return {"files": run_files(result), "wall_s": time.perf_counter() - t0}
    except KeyboardInterrupt:
        raise
    except UserError as e:  # bad input found only when the point ran (a data file's content)
        return {"error": str(e), "user_error": True, "wall_s": time.perf_counter() - t0}
    except Exception as e:  # a bug or an engine failure: report it with the point
        if interrupts.caused_by_interrupt(e):  # a Ctrl-C a library wrapped: not a failure
            raise KeyboardInterrupt from None
        return {"error": f"{type(e).__name__}: {e}", "wall_s": time.perf_counter() - t0}


def _outcome(task_id: str, payload: dict[str, Any]) -> Outcome:
    return Outcome(
        task_id,
        payload.get("files"),
        float(payload.get("wall_s", 0.0)),
        payload.get("error"),
        bool(payload.get("user_error", False)),
    )


class Executor(ABC):
    """Submit points, then wait for at least one to finish."""

    #: how many points to keep in flight
    slots: int = 1

    @abstractmethod
    def submit(self, task_id: str, spec: Any) -> None: ...

    @abstractmethod
    def wait(self) -> list[Outcome]:
        """Block until at least one submitted task finishes; [] if none is pending."""

    @abstractmethod
    def pending(self) -> int: ...

    def close(self, *, cancel: bool = False) -> None:  # noqa: B027 - optional hook
        """Release workers; ``cancel`` drops tasks not yet finished."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(cancel=exc[0] is not None)


def _spec_json(spec: Any) -> str:
    return spec.model_dump_json() if hasattr(spec, "model_dump_json") else json.dumps(spec)


class SequentialExecutor(Executor):
    """Runs each point in this process when waited on (Ctrl-C lands here directly)."""

    slots = 1

    def __init__(self) -> None:
        self._queue: deque[tuple[str, str]] = deque()

    def submit(self, task_id: str, spec: Any) -> None:
        self._queue.append((task_id, _spec_json(spec)))

    def wait(self) -> list[Outcome]:
        if not self._queue:
            return []
        task_id, spec_json = self._queue.popleft()
        return [_outcome(task_id, run_point(spec_json))]

    def pending(self) -> int:
        return len(self._queue)

    def close(self, *, cancel: bool = False) -> None:
        self._queue.clear()


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the driver, which cancels them cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class ProcessPoolExecutor(Executor):
    """``--jobs N`` local worker processes (spawned: no state shared with the driver)."""

    #: points kept in flight per worker: one running, one queued, so a worker never waits
    #: while the driver stores the last result (fsync) or plans the next
    IN_FLIGHT_PER_WORKER = 2

    def __init__(self, jobs: int) -> None:
        workers = max(1, int(jobs))
        self.slots = workers * self.IN_FLIGHT_PER_WORKER
        self._pool = cf.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_ignore_sigint,
        )
        self._futures: dict[cf.Future[dict[str, Any]], str] = {}

    def submit(self, task_id: str, spec: Any) -> None:
        fut = self._pool.submit(run_point, _spec_json(spec))
        self._futures[fut] = task_id

    def wait(self) -> list[Outcome]:
        if not self._futures:
            return []
        done, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
        out = []
        for fut in done:
            task_id = self._futures.pop(fut)
            try:
                out.append(_outcome(task_id, fut.result()))
            except Exception as e:  # a worker died (killed, out of memory)
                out.append(Outcome(task_id, error=f"worker failed: {type(e).__name__}: {e}"))
        return out

    def pending(self) -> int:
        return len(self._futures)

    def close(self, *, cancel: bool = False) -> None:
        if cancel:
            # Our own workers: stop them now rather than wait for runs nobody will store.
            for proc in list(getattr(self._pool, "_processes", {}).values()):
                proc.terminate()
        self._pool.shutdown(wait=True, cancel_futures=cancel)
        self._futures.clear()


class RayExecutor(Executor):
    """Points as Ray tasks: ``address`` joins a cluster, None starts a local instance."""

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        slots: int | None = None,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise UserError(
                "--executor ray: Ray is not installed (pip install 'llm-workload-eval[ray]')"
            ) from None
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if address is None:
                kwargs["num_cpus"] = num_cpus
            # The allocation limits (--max-requests, ...) travel with the job's workers.
            env = {lim.env: os.environ[lim.env] for lim in ALL_LIMITS if lim.env in os.environ}
            if env:
                kwargs["runtime_env"] = {"env_vars": env}
            failure: Exception | None = None
            with captured_output() as said:  # Ray's C++ client names the cause, on stderr
                try:
                    ray.init(address=address, **kwargs)
                except (ConnectionError, RuntimeError, ValueError) as e:
                    failure = e
            if failure is not None:
                raise ray_connect_error(address, failure, said.text(wait=1.0)) from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.slots = slots or max(1, 2 * cpus)
        self._remote = ray.remote(num_cpus=1, max_retries=1)(run_point)
        self._refs: dict[Any, str] = {}

    def submit(self, task_id: str, spec: Any) -> None:
        self._refs[self._remote.remote(_spec_json(spec))] = task_id

    def wait(self) -> list[Outcome]:
        if not self._refs:
            return []
        done, _ = self._ray.wait(list(self._refs), num_returns=1)
        out = []
        for ref in done:
            task_id = self._refs.pop(ref)
            try:
                out.append(_outcome(task_id, self._ray.get(ref)))
            except Exception as e:  # the task's worker died
                out.append(Outcome(task_id, error=f"ray task failed: {type(e).__name__}: {e}"))
        return out

    def pending(self) -> int:
        return len(self._refs)

    def close(self, *, cancel: bool = False) -> None:
        if cancel:
            for ref in self._refs:
                self._ray.cancel(ref, force=True)
        self._refs.clear()
        if self._started:
            self._ray.shutdown()
            self._started = False


# What Ray says (C++ log lines, exception text) when the cluster wants a token it did not get.
_AUTH_SIGNS = ("InvalidAuthToken", "Unauthenticated", "Authentication token", "auth_token")
AUTH_FIX = (
    "the cluster uses token authentication (Ray 2.60's default for `ray start --head` when "
    "a token exists) and this client sent none or another one: set RAY_AUTH_MODE=token "
    "and the cluster's token (RAY_AUTH_TOKEN=<token>, RAY_AUTH_TOKEN_PATH=<file> or "
    "~/.ray/auth_token; `ray get-auth-token` on the head node prints it)"
)


def ray_connect_error(address: str | None, e: Exception, said: str) -> UserError:
    """One line naming why ``ray.init(address)`` failed, and the fix when it is known."""
    text = f"{e} {said}"
    where = f"--ray-address {address}" if address else "--executor ray"
    if any(sign in text for sign in _AUTH_SIGNS):
        mode = os.environ.get("RAY_AUTH_MODE")
        now = f"RAY_AUTH_MODE={mode}" if mode else "RAY_AUTH_MODE unset"
        return UserError(f"{where}: cannot connect to Ray ({now}): {AUTH_FIX}")
    first = " ".join(str(e).split())[:300]
    return UserError(
        f"{where}: cannot connect to Ray ({first}); is a cluster running there "
        "(`ray start --head --port PORT`) and reachable from this machine?"
    )


def make_executor(
    kind: str = "local",
    *,
    jobs: int = 1,
    ray_address: str | None = None,
    ray_num_cpus: int | None = None,
) -> Executor:
    if kind == "local":
        return SequentialExecutor() if jobs <= 1 else ProcessPoolExecutor(jobs)
    if kind == "ray":
        return RayExecutor(ray_address, num_cpus=ray_num_cpus)
    raise UserError(f"--executor: unknown executor {kind!r} (expected local or ray)")
