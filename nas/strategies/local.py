"""Executors on this machine: evaluate in this process, or in a pool of worker processes.

Workers only evaluate: they receive a genotype, send back per-epoch reports and a result,
and never touch the store or the optimiser (the driver in the parent does). A worker that
dies is noticed at once (its process sentinel) and its trial recorded as FAIL with the exit
code; workers ignore Ctrl-C (the parent stops them) and die with the parent.
"""
from __future__ import annotations

import multiprocessing as mp
import signal
import time
from multiprocessing.connection import wait
from typing import TYPE_CHECKING

from nas.strategies import TrialStopped, error_text

if TYPE_CHECKING:  # pragma: no cover - the workers never import the driver (nor the store)
    from nas.strategies.driver import Driver


def run_inline(driver: Driver, evaluator) -> None:
    """Propose, evaluate in this process, record, until the driver proposes no more."""
    while True:
        driver.poll()
        live = driver.propose()
        if live is None:
            if driver.waiting():        # repeats of trials other processes still train
                driver.poll(force=True)
                time.sleep(0.5)
                continue
            return

        def on_epoch(epoch: int, accuracy: float, live=live) -> None:
            if driver.epoch(live, epoch, accuracy):
                raise TrialStopped(f"epoch {epoch} accuracy {accuracy:.4f} below the median")
        try:
            result = evaluator(live.genotype, on_epoch)
        except TrialStopped as e:
            driver.finish(live, pruned=str(e))
        except Exception as e:  # noqa: BLE001 - a failing architecture is data; the search goes on
            driver.finish(live, error=error_text(e))
        else:
            driver.finish(live, dict(result))


class _Worker:
    """One evaluating child process and the trial it holds."""

    def __init__(self, ctx, evaluator, threads: int):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, evaluator, threads), daemon=True)
        self.proc.start()
        child.close()
        self.live = None
        from nas.store import worker_id

        self.name = f"{worker_id().rpartition(':')[0]}:{self.proc.pid}"

    def submit(self, live, prunes: bool) -> None:
        self.live = live
        self.conn.send((live.genotype.to_json(), prunes))

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()


class Pool:
    """``workers`` child processes evaluating one at a time. Started before the driver, so
    that the children start Python and import while the parent opens the study."""

    def __init__(self, evaluator, workers: int, threads: int = 1):
        self.ctx = mp.get_context("spawn")
        self.evaluator, self.threads = evaluator, threads
        self.workers: list[_Worker] = []
        try:
            for _ in range(workers):
                self.workers.append(self.spawn())
        except BaseException:
            self.close()
            raise

    def spawn(self) -> _Worker:
        return _Worker(self.ctx, self.evaluator, self.threads)

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        for w in self.workers:
            w.proc.join(timeout=2)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(timeout=2)


def run_pool(driver: Driver, pool: Pool) -> None:
    """Keep the pool's worker processes evaluating the driver's proposals (the caller
    closes the pool). While every worker is busy the driver proposes one trial ahead (the
    spare), handed to whichever worker frees first: a worker waits for a pipe message, not
    for the optimiser, the cost model and the store, and the last trials are never queued
    behind a busy worker while another idles."""
    prunes = driver.proposer.prunes
    workers = pool.workers
    spare = None
    while True:
        driver.poll()
        for i, w in enumerate(workers):
            if w.live is None and not w.proc.is_alive() and (spare or not driver.done):
                workers[i] = w = pool.spawn()  # died while idle
            if w.live is None:
                live, spare = spare or (None if driver.done else driver.propose()), None
                if live is not None:
                    w.submit(live, prunes)
        if spare is None and not driver.done and all(w.live is not None for w in workers):
            spare = driver.propose()  # claimed now: it counts toward --trials and the repeats
        busy = [w for w in workers if w.live is not None]
        if not busy:
            if driver.done and not driver.waiting():
                return
            driver.poll(force=True)
            time.sleep(0.5)
            continue
        wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=1.0)
        for i, w in enumerate(workers):
            if w.live is None:
                continue
            _drain(driver, w)
            if w.live is not None and not w.proc.is_alive():
                _drain(driver, w)
            if w.live is not None and not w.proc.is_alive():
                driver.finish(w.live, worker=w.name,
                              error=f"worker process {w.proc.pid} died (exit code "
                                    f"{w.proc.exitcode}) while evaluating the trial")
                w.live = None
                workers[i] = pool.spawn()


def _drain(driver: Driver, w: _Worker) -> None:
    """Handle the messages ``w`` sent so far."""
    while w.live is not None:
        try:
            if not w.conn.poll():
                return
            kind, *rest = w.conn.recv()
        except (EOFError, OSError):
            return
        if kind == "epoch":
            epoch, accuracy = rest
            stop = driver.epoch(w.live, epoch, accuracy)
            if driver.proposer.prunes:
                w.conn.send(stop)
            continue
        live, w.live = w.live, None
        who = w.name
        if kind == "done":
            driver.finish(live, rest[0], worker=who)
        elif kind == "pruned":
            driver.finish(live, pruned=rest[0], worker=who)
        else:
            driver.finish(live, error=rest[0], worker=who)


def _worker_main(conn, evaluator, threads: int) -> None:
    """A worker process: evaluate each genotype it receives until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle
    _die_with_parent()
    import os
    import sys

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before anything imports torch
        os.environ[var] = str(threads)
    if "torch" in sys.modules:  # an evaluator that needs torch imports it; others start fast
        sys.modules["torch"].set_num_threads(threads)
    from nas.genotype import Genotype

    prunes = False

    def on_epoch(epoch: int, accuracy: float) -> None:
        conn.send(("epoch", epoch, float(accuracy)))
        if prunes and conn.recv():
            raise TrialStopped(f"epoch {epoch} accuracy {accuracy:.4f} below the median")
    while True:
        try:
            text, prunes = conn.recv()
        except (EOFError, OSError):
            return
        try:
            result = evaluator(Genotype.from_json(text), on_epoch)
        except TrialStopped as e:
            conn.send(("pruned", str(e)))
        except Exception as e:  # noqa: BLE001 - reported to the driver as the trial's error
            conn.send(("error", error_text(e)))
        else:
            conn.send(("done", dict(result)))


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM when the parent dies (a SIGKILLed search leaves no orphans)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
