"""Does the search find something? TPE and NSGA-II vs random search, and the best find vs resnet18.

Part (a): for each sampler (tpe, nsga2, random) and each seed, one real search
(``python -m nas.search``) in its own SQLite database, at equal trained-trial counts, with
``--no-seeds`` (the classic seed nets are not queued, so the three samplers differ only in what
they propose; resnet18 is compared separately in part (b)). Each run's quality is the 2-D
hypervolume of its trials' (validated signal, target MACs) points against a fixed reference
point: signal = chance accuracy 0.1 (10 classes), MACs = the budget. Hypervolume is computed on
the first K trained trials of every run, for several K, so runs are compared at equal counts.

Part (b): the best architecture found (highest search score at or under resnet18's MACs, over
all runs) and resnet18, both retrained under the calibration reference protocol with 3 seeds.

    python experiments/search_evidence.py run --trials 24 --seeds 0 1 2 3 4 --parallel 3
    python experiments/search_evidence.py retrain --seeds 0 1 2
    python experiments/search_evidence.py report

``run`` and ``retrain`` resume: a search is re-run to reach its trial count (the search itself
resumes its study), and retrain rows already in ``retrain.jsonl`` are skipped. Run them under
``nice -n 19`` with ``OMP_NUM_THREADS=1`` on a shared machine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nas.cli import ArgumentParser  # noqa: E402
from nas.cost import parse_budget  # noqa: E402
from nas.errors import NasError  # noqa: E402

DEFAULT_OUT = ROOT / "experiments" / "results" / "search_evidence"
SAMPLERS = ("tpe", "nsga2", "random")
SPACE, BUDGET = "resnet_like", "2GFLOPs"
#: Hypervolume reference point: (signal, MACs) = chance accuracy on 10 classes, the budget.
REF_ACCURACY = 0.1
#: ... and for validation cross-entropy (minimised): ln(10), a uniform guess over 10 classes.
REF_VAL_LOSS = 2.302585092994046
#: The calibration reference protocol (experiments/results/calibration_resnet_like_2GFLOPs).
REFERENCE = "epochs=4,train_images=4000,val_images=1000,batch_size=64,lr=0.1,warmup=0.1"


# ------------------------------------------------------------------ hypervolume
def hypervolume_2d(points, ref) -> float:
    """Area dominated by ``points`` (each (quality, cost): quality maximised, cost minimised)
    and bounded by ``ref`` = (quality_ref, cost_ref). Points not better than ``ref`` in both
    coordinates add nothing. Exact (a sweep over the Pareto front)."""
    from nas.quality import pareto_front

    qref, cref = ref
    pts = [(q, c) for q, c in points if q > qref and c < cref]
    if not pts:
        return 0.0
    front = sorted((pts[i] for i in pareto_front(pts, ["max", "min"])), key=lambda p: p[1])
    area, best_q = 0.0, qref
    # sweep by increasing cost: each front point adds a rectangle of its quality gain over the
    # best quality so far, from its cost to the reference cost
    for q, c in front:
        if q > best_q:
            area += (q - best_q) * (cref - c)
            best_q = q
    return area


def counts(t: dict, signal: str = "accuracy") -> bool:
    """A trained trial that counts toward ``--trials``: complete, with a value, not a repeat
    of an earlier trial of its run (a repeat reuses that trial's result, as the search's own
    trial count does)."""
    return (t.get("state") == "COMPLETE" and t.get(signal) is not None
            and t.get("duplicate_of") is None)


def run_points(trials, k: int | None = None, signal: str = "accuracy"):
    """(quality, GMACs) of the first ``k`` trained (COMPLETE, with a value) trials by number.
    val_loss is turned into quality by negation."""
    done = [t for t in sorted(trials, key=lambda t: t["number"]) if counts(t, signal)]
    if k is not None:
        done = done[:k]
    sign = -1.0 if signal == "val_loss" else 1.0
    return [(sign * t[signal], t["target_macs"] / 1e9) for t in done]


def spread(values) -> dict:
    """mean, sample std, min, max of a list of numbers (std 0 for one value)."""
    values = list(values)
    return {"n": len(values), "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


# ------------------------------------------------------------------ part (a): searches
def run_name(sampler: str, seed: int) -> str:
    return f"{sampler}-s{seed}"


def search_args(sampler: str, seed: int, trials: int, dbdir: Path) -> list[str]:
    """The ``nas.search`` flags of one run (ranked by accuracy, the default signal when the
    committed runs were launched, so that they reproduce whatever ``DEFAULT`` says now)."""
    name = run_name(sampler, seed)
    return ["--space", SPACE, "--budget", BUDGET, "--sampler", sampler, "--seed", str(seed),
            "--trials", str(trials), "--no-seeds", "--workers", "1", "--threads", "1",
            "--device", "cpu", "--signal", "accuracy",
            "--storage", f"sqlite:///{dbdir / (name + '.db')}"]


def search_command(sampler: str, seed: int, trials: int, dbdir: Path) -> list[str]:
    """The command of one run: ``nas.search``'s own code (:func:`nas.search.run_search`) with
    the trainer behind a cross-run cache (:class:`CachedEvaluator`)."""
    return [sys.executable, str(Path(__file__).resolve()), "search-one", "--cache",
            str(dbdir / "cache.sqlite"), "--", *search_args(sampler, seed, trials, dbdir)]


class CachedEvaluator:
    """``nas.search.TrainEvaluator`` behind a cache shared by all runs: one training per
    (evaluation settings, search seed, architecture). Training on CPU is deterministic under
    a seed (same data subset, same init, same batches), so a cached result is the result a
    run would have computed itself; the three samplers of one seed propose many of the same
    architectures (TPE and NSGA-II start from random proposals), and each is trained once.
    A key being trained by another live process is waited for, not trained twice."""

    def __init__(self, inner, cache: str | os.PathLike, key_prefix):
        self.inner, self.cache, self.prefix = inner, str(cache), key_prefix
        self.hits = self.misses = 0

    def _conn(self):
        import sqlite3

        conn = sqlite3.connect(self.cache, timeout=60, isolation_level=None)
        conn.execute("CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, state TEXT, "
                     "pid INTEGER, result TEXT)")
        return conn

    def __call__(self, genotype, on_epoch, *, wait: bool = True):
        """The evaluator's result (cached); ``wait=False``: None instead of waiting for a
        key another live process is training."""
        key = json.dumps([self.prefix, genotype.canonical_hash()], sort_keys=True)
        conn = self._conn()
        try:
            while True:
                conn.execute("BEGIN IMMEDIATE")
                row = conn.execute("SELECT state, pid, result FROM cache WHERE key = ?",
                                   (key,)).fetchone()
                if row and row[0] == "done":
                    conn.execute("COMMIT")
                    self.hits += 1
                    result = json.loads(row[2])
                    for h in result.get("epochs") or []:
                        on_epoch(h["epoch"], h["val_accuracy"])
                    return result
                if row and row[1] != os.getpid() and _alive(row[1]):
                    conn.execute("COMMIT")
                    if not wait:
                        return None
                    time.sleep(3)
                    continue
                conn.execute("INSERT OR REPLACE INTO cache VALUES (?, 'running', ?, NULL)",
                             (key, os.getpid()))
                conn.execute("COMMIT")
                break
            self.misses += 1
            try:
                result = self.inner(genotype, on_epoch)
            except BaseException:
                conn.execute("DELETE FROM cache WHERE key = ? AND pid = ?", (key, os.getpid()))
                raise
            conn.execute("UPDATE cache SET state = 'done', result = ? WHERE key = ?",
                         (json.dumps(result), key))
            return result
        finally:
            conn.close()


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def cmd_search_one(args) -> int:
    """One search through nas.search's code, its trainer cached (see CachedEvaluator)."""
    from nas import search as S
    from nas.spaces import load_space

    argv = args.search_args[1:] if args.search_args[:1] == ["--"] else args.search_args
    c = S.config_from_args(argv)
    space = load_space(c.space)
    S._set_threads(c.threads)
    inner = S.TrainEvaluator(c, space.input_shape, S.resolve_device(c.device))
    ev = CachedEvaluator(inner, args.cache, [c.seed, c.evaluation()])
    result = S.run_search(c, evaluator=ev, space=space)
    print(f"cache: {ev.hits} hit(s), {ev.misses} training(s)", flush=True)
    return 130 if result["summary"]["interrupted"] else 0


def read_trials(db: Path) -> list[dict]:
    """Every trial of the single study in ``db`` (read-only)."""
    from nas.store import TrialStore

    store = TrialStore(f"sqlite:///{db}", create=False, readonly=True)
    try:
        studies = store.studies()
        if len(studies) != 1:
            raise NasError(f"{db}: expected one study, found {len(studies)}")
        return store.trials(studies[0]["name"])
    finally:
        store.close()


def trained(db: Path) -> int:
    if not db.exists():
        return 0
    return sum(counts(t) for t in read_trials(db))


def live(db: Path) -> bool:
    """Whether a search process (this runner's or another's) is running on ``db`` now."""
    from nas.store import TrialStore

    if not db.exists():
        return False
    store = TrialStore(f"sqlite:///{db}", create=False, readonly=True)
    try:
        return any(store.live_runs(st["name"]) for st in store.studies())
    finally:
        store.close()


def cmd_run(args) -> int:
    out = Path(args.out)
    dbdir = out / "db"
    dbdir.mkdir(parents=True, exist_ok=True)
    # seed-major, random first: TPE and NSGA-II then find random's first proposals cached
    todo = [(s, seed) for seed in args.seeds for s in sorted(args.samplers, key=lambda s: s != "random")]
    todo = [(s, seed) for s, seed in todo
            if trained(dbdir / (run_name(s, seed) + ".db")) < args.trials]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    print(f"{len(todo)} run(s) to do, {args.parallel} at a time", flush=True)
    if todo:
        from nas.evaluate.protocol import DEFAULT

        launch = {"time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                  "protocol": DEFAULT.to_dict(), "trials": args.trials, "seeds": args.seeds,
                  "samplers": args.samplers, "parallel": args.parallel,
                  "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"],
                                           capture_output=True, text=True).stdout.strip(),
                  "loadavg": os.getloadavg(),
                  "runs": ["-m nas.search " + " ".join(search_args(s, seed, args.trials, Path("db")))
                           for s, seed in todo]}
        with open(out / "launches.jsonl", "a") as f:
            f.write(json.dumps(launch) + "\n")
    running: dict[int, tuple[str, float]] = {}   # pid -> (run name, start time)
    waiting: list[str] = []                        # runs another process is searching
    queue = list(todo)
    while queue or running or waiting:
        waiting = [n for n in waiting if live(dbdir / (n + ".db"))]
        while queue and len(running) + len(waiting) < args.parallel:
            s, seed = queue.pop(0)
            name = run_name(s, seed)
            db = dbdir / (name + ".db")
            if live(db):  # e.g. started by an earlier runner that was stopped: wait for it
                waiting.append(name)
                queue.append((s, seed))
                print(f"{time.strftime('%H:%M:%S')} {name} is running elsewhere: waiting",
                      flush=True)
                continue
            if trained(db) >= args.trials:
                continue
            cmd = search_command(s, seed, args.trials, dbdir)
            log = open(dbdir / (name + ".log"), "a")
            log.write(f"\n$ {' '.join(cmd)}\n# started {time.strftime('%H:%M:%S')}\n")
            log.flush()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    cwd=str(dbdir))
            running[proc.pid] = (name, time.time())
            print(f"{time.strftime('%H:%M:%S')} start {name}", flush=True)
        time.sleep(5)
        for pid in list(running):
            done_pid, status, usage = os.wait4(pid, os.WNOHANG)
            if done_pid == 0:
                continue
            name, t0 = running.pop(pid)
            log = (dbdir / (name + ".log")).read_text().splitlines()
            cache = next((ln for ln in reversed(log) if ln.startswith("cache: ")), None)
            rec = {"run": name, "cache": cache, "exit": os.waitstatus_to_exitcode(status),
                   "wall_s": time.time() - t0, "cpu_s": usage.ru_utime + usage.ru_stime,
                   "finished_utc": time.strftime("%H:%M:%S", time.gmtime()),
                   "loadavg": os.getloadavg()}
            with open(out / "runs.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            print(f"{time.strftime('%H:%M:%S')} {name} exit {rec['exit']} after "
                  f"{rec['wall_s']:.0f} s ({rec['cpu_s']:.0f} CPU s)", flush=True)
    return 0


def random_proposals(seed: int, n: int, workdir: Path) -> list[str]:
    """The genotypes (JSON) the random sampler of ``seed`` trains first, in order: its
    proposals do not depend on the results, so a dry run (every trial scored 0.5, nothing
    trained) lists them."""
    from nas import search as S
    from nas.spaces import load_space

    class Dry:
        def __call__(self, genotype, on_epoch):
            return {"accuracy": 0.5, "val_loss": 1.0, "train_loss": 1.0, "proxy_params": 0,
                    "proxy_macs": 0, "epochs": []}

    db = workdir / f"dry-random-s{seed}.db"
    c = S.config_from_args(search_args("random", seed, n, workdir)[:-1] + [f"sqlite:///{db}"])
    S.run_search(c, evaluator=Dry(), space=load_space(c.space), out=lambda *a, **k: None)
    return [t["genotype"] for t in read_trials(db) if t["state"] == "COMPLETE"][:n]


def cmd_warm(args) -> int:
    """Train random's first proposals of a seed into the cache (part ``part`` of ``parts``),
    so that the searches of that seed, which propose them in sequence, find them trained."""
    import tempfile

    from nas import search as S
    from nas.genotype import Genotype
    from nas.spaces import load_space

    with tempfile.TemporaryDirectory() as tmp:
        genotypes = random_proposals(args.seed, args.n, Path(tmp))
    c = S.config_from_args(search_args("random", args.seed, args.n, Path(".")))
    space = load_space(c.space)
    S._set_threads(c.threads)
    ev = CachedEvaluator(S.TrainEvaluator(c, space.input_shape, S.resolve_device(c.device)),
                         args.cache, [c.seed, c.evaluation()])
    for i, g in enumerate(genotypes):
        if i % args.parts == args.part:
            r = ev(Genotype.from_json(g), lambda e, a: None, wait=False)
            print(f"{time.strftime('%H:%M:%S')} proposal {i}: "
                  + (f"accuracy {r['accuracy']}" if r else "being trained by another process"),
                  flush=True)
    print(f"cache: {ev.hits} hit(s), {ev.misses} training(s)", flush=True)
    return 0


# ------------------------------------------------------------------ part (b): retraining
def seed_net(space, name: str) -> dict:
    """A classic seed net of the space as an architecture record."""
    for s in space.seeds(None):
        if s.name == name:
            return arch_record(space, name, dict(s.params))
    raise NasError(f"space {space.name!r} has no seed net {name!r}")


def arch_record(space, name: str, params: dict, **extra) -> dict:
    cost = space.cost(params)
    return {"name": name, "params": params, "hash": space.build(params).canonical_hash(),
            "target_macs": cost.macs, "target_params": cost.params, **extra}


def all_trials(dbdir: Path) -> dict[str, list[dict]]:
    """Every run's trials, by run name, for the databases present."""
    runs = {}
    for db in sorted(dbdir.glob("*.db")):
        runs[db.stem] = read_trials(db)
    return runs


def best_found(runs: dict[str, list[dict]], max_macs: int, signal: str = "accuracy") -> dict:
    """The trained trial with the best signal at or under ``max_macs`` over all runs (ties:
    fewer MACs, then run name and trial number)."""
    sign = -1.0 if signal == "val_loss" else 1.0
    cands = [(sign * t[signal], -t["target_macs"], name, t) for name, ts in runs.items()
             for t in ts if t["state"] == "COMPLETE" and t.get(signal) is not None
             and t["target_macs"] <= max_macs]
    if not cands:
        raise NasError(f"no trained trial at or under {max_macs} MACs yet")
    q, _, name, t = max(cands, key=lambda c: (c[0], c[1], [-ord(ch) for ch in c[2]],
                                              -c[3]["number"]))
    return {"run": name, "number": t["number"], "params": t["params"], "signal": signal,
            "search_score": t[signal], "target_macs": t["target_macs"]}


def cmd_retrain(args) -> int:
    from nas.calibrate import run_one
    from nas.evaluate.protocol import parse_protocol
    from nas.spaces import load_space

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space = load_space(SPACE)
    ref = parse_protocol(REFERENCE)
    r18 = seed_net(space, "resnet18")
    if args.arch == "resnet18":
        arch = r18
    else:
        # chosen once (best_found.json), so parallel retrain processes train the same arch
        pick = out / "best_found.json"
        if pick.exists():
            found = json.loads(pick.read_text())
        else:
            runs = all_trials(out / "db")
            found = best_found(runs, r18["target_macs"])
            found["chosen_utc"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
            found["trained_per_run"] = {n: sum(t["state"] == "COMPLETE" for t in ts)
                                        for n, ts in runs.items()}
            pick.write_text(json.dumps(found, indent=1))
        arch = arch_record(space, "best_found", found["params"], found=found)
    path = out / "retrain.jsonl"
    done = set()
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            done.add((r["hash"], json.dumps(r["protocol"], sort_keys=True), r["seed"]))
    genotype = space.build(arch["params"]).to_json()
    for seed in args.seeds:
        if (arch["hash"], json.dumps(ref.to_dict(), sort_keys=True), seed) in done:
            print(f"{arch['name']} seed {seed}: done already", flush=True)
            continue
        t0 = time.time()
        cpu0 = time.process_time()
        r = run_one(genotype, ref.to_dict(), seed)
        rec = {**arch, "protocol": ref.to_dict(), "seed": seed, **r,
               "cpu_seconds": time.process_time() - cpu0,
               "loadavg_end": os.getloadavg(), "finished_utc": time.strftime("%H:%M:%S", time.gmtime())}
        with path.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        print(f"{arch['name']} seed {seed}: accuracy {r.get('accuracy')} val_loss "
              f"{r.get('val_loss')} in {time.time() - t0:.0f} s", flush=True)
    return 0


# ------------------------------------------------------------------ report
def run_summary(trials: list[dict], ks, ref, signal: str = "accuracy") -> dict:
    """One run's figures: trained count, hypervolume at each K (None where the run has fewer
    than K trained trials), best signal, proposals not trained."""
    done = [t for t in trials if counts(t, signal)]
    pts = run_points(trials, None, signal)
    hv = {k: (hypervolume_2d(pts[:k], ref) if len(pts) >= k else None) for k in ks}
    best = max(done, key=lambda t: (t[signal] if signal != "val_loss" else -t[signal]),
               default=None)
    return {"trained": len(done), "hv": hv,
            "best": best and {"number": best["number"], signal: best[signal],
                              "target_macs": best["target_macs"], "params": best["params"]},
            "over_budget": sum(not t.get("feasible", True) for t in trials),
            "repeats": sum(t.get("duplicate_of") is not None for t in trials),
            "failed": sum(t["state"] == "FAIL" for t in trials),
            "mean_trial_s": (statistics.fmean(t["duration_s"] for t in done
                                              if t.get("duration_s") is not None)
                             if done else None)}


def compare(summaries: dict[str, dict], k: int, samplers=SAMPLERS, baseline: str = "random"):
    """Per sampler at K: the hypervolume spread over seeds that reached K, and the ratio to the
    baseline sampler (ratio of means, and the spread of per-seed paired ratios)."""
    by = {}
    for s in samplers:
        seeds = {int(n.split("-s")[1]): v["hv"].get(k) for n, v in summaries.items()
                 if n.split("-s")[0] == s and v["hv"].get(k) is not None}
        by[s] = seeds
    common = sorted(set.intersection(*(set(v) for v in by.values()))) if by else []
    rows = {}
    for s in samplers:
        vals = [by[s][i] for i in common]
        if not vals:
            continue
        base = [by[baseline][i] for i in common]
        paired = [v / b for v, b in zip(vals, base) if b > 0]
        rows[s] = {"seeds": common, "hv": spread(vals),
                   "ratio_of_means": statistics.fmean(vals) / statistics.fmean(base),
                   "paired_ratio": spread(paired) if paired else None,
                   "wins_vs_baseline": sum(v > b for v, b in zip(vals, base)),
                   "ties_vs_baseline": sum(v == b for v, b in zip(vals, base))}
    return rows


def shared_prefix(a: list[dict], b: list[dict]) -> int:
    """How many leading trained trials (by number) two runs have in common (same params)."""
    pa = [t["params"] for t in sorted(a, key=lambda t: t["number"]) if counts(t)]
    pb = [t["params"] for t in sorted(b, key=lambda t: t["number"]) if counts(t)]
    n = 0
    for x, y in zip(pa, pb):
        if x != y:
            break
        n += 1
    return n


def _hv_table(compare_by_k: dict, ks) -> list[str]:
    L = ["| K | sampler | seeds | HV mean | HV std | HV min | HV max | ratio vs random | "
         "paired ratio mean [min, max] | wins/ties vs random |",
         "|---:|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for k in ks:
        for s, r in compare_by_k[str(k)].items():
            pr = r["paired_ratio"]
            L.append(f"| {k} | {s} | {len(r['seeds'])} | {r['hv']['mean']:.4f} | "
                     f"{r['hv']['std']:.4f} | {r['hv']['min']:.4f} | {r['hv']['max']:.4f} | "
                     f"{r['ratio_of_means']:.3f} | "
                     + (f"{pr['mean']:.3f} [{pr['min']:.3f}, {pr['max']:.3f}]" if pr else "-")
                     + f" | {r['wins_vs_baseline']}/{r['ties_vs_baseline']} |")
    return L


def _order(name: str):
    sampler, seed = name.split("-s")
    return (int(seed), SAMPLERS.index(sampler))


def _m(x, fmt="{:.4f}"):
    return "-" if x is None else fmt.format(x)


def _load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def build_summary(runs: dict[str, list[dict]], *, launches=(), retrain=(), runs_meta=None,
                  budget_macs: int | None = None) -> dict:
    """Every figure of the report from the runs' trials (by run name ``<sampler>-s<seed>``)."""
    budget = budget_macs or parse_budget(BUDGET)
    ref = (REF_ACCURACY, budget / 1e9)
    trained_counts = [sum(counts(t) for t in ts) for ts in runs.values()]
    k_all = min(trained_counts)
    ks = sorted({k for k in (4, 8, 12, 16, 20, 24) if k <= max(trained_counts)} | {k_all} - {0})
    summaries = {n: run_summary(ts, ks, ref) for n, ts in runs.items()}
    tables = {k: compare(summaries, k) for k in ks}
    # the same trials ranked by validation cross-entropy (stored per trial), reference point
    # ln(10): the loss of a uniform guess over 10 classes
    ref_vl = (-REF_VAL_LOSS, budget / 1e9)
    summaries_vl = {n: run_summary(ts, ks, ref_vl, "val_loss") for n, ts in runs.items()}
    tables_vl = {k: compare(summaries_vl, k) for k in ks}
    shared = {}
    for n, ts in runs.items():
        sampler, seed = n.split("-s")
        base = runs.get(f"{SAMPLERS[-1]}-s{seed}")
        if sampler != SAMPLERS[-1] and base is not None:
            shared[n] = shared_prefix(ts, base)
    return {"shared_prefix": shared, "reference_point": {"accuracy": REF_ACCURACY, "macs": budget}, "ks": ks,
            "k_all": k_all, "runs": summaries, "compare": {str(k): v for k, v in tables.items()},
            "compare_val_loss": {str(k): v for k, v in tables_vl.items()},
            "reference_point_val_loss": {"val_loss": REF_VAL_LOSS, "macs": budget},
            "runs_meta": dict(runs_meta or {}), "launches": list(launches),
            "retrain": list(retrain), "report_loadavg": os.getloadavg()}


def cmd_report(args) -> int:
    out = Path(args.out)
    runs = all_trials(out / "db")
    if not runs:
        raise NasError(f"no search databases in {out / 'db'}: run `run` first")
    summary = build_summary(runs, launches=_load_jsonl(out / "launches.jsonl"),
                            retrain=_load_jsonl(out / "retrain.jsonl"),
                            runs_meta={r["run"]: r for r in _load_jsonl(out / "runs.jsonl")})
    if (out / "notes.md").exists():   # hand-written facts about how the runs went
        summary["notes"] = (out / "notes.md").read_text()
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    with (out / "trials.jsonl").open("w") as f:
        for n, ts in runs.items():
            for t in ts:
                f.write(json.dumps({"run": n, **{k: t.get(k) for k in (
                    "number", "state", "params", "target_macs", "target_params", "proxy_macs",
                    "accuracy", "val_loss", "feasible", "duplicate_of", "duration_s", "error")}},
                    default=str) + "\n")
    ref = (summary["reference_point"]["accuracy"], summary["reference_point"]["macs"] / 1e9)
    charted = chart(runs, ref, out / "chart.png")
    (out / "report.md").write_text(render(summary, charted))
    print((out / "report.md").read_text())
    return 0


def render(summary: dict, charted: bool) -> str:
    ks = summary["ks"]
    launches, runs = summary["launches"], summary["runs"]
    proto = launches[0]["protocol"] if launches else None
    L = ["# Search evidence: TPE and NSGA-II vs random search, best find vs resnet18", ""]
    L += ["Space `resnet_like` under 2 GFLOPs (MACs at the 224-px target spec); every search "
          "a real `python -m nas.search` run in its own SQLite study, one worker, one torch "
          "thread, `--no-seeds` (the classic seed nets are not queued, so all three samplers "
          "propose every trained architecture themselves; resnet18 is compared in part (b)). "
          "The search's seed sets the sampler, the data subset and the training seed, so the "
          "three samplers of one seed see the same data and noise (a paired comparison).", ""]
    if proto:
        L += [f"Search protocol (`nas.evaluate.protocol.DEFAULT` at launch, signal "
              f"`{proto['signal']}`): `{json.dumps(proto)}`.", ""]
    for ln in launches:
        L += [f"Launched {ln['time_utc']} UTC (commit `{ln['commit'][:10] or 'not recorded'}`), "
              f"load average {', '.join(f'{x:.1f}' for x in ln['loadavg'])}; {ln['parallel']} "
              f"searches at a time, `nice -n 19`, `OMP_NUM_THREADS=1`, "
              f"`python experiments/search_evidence.py run --trials {ln['trials']} --seeds "
              f"{' '.join(map(str, ln['seeds']))} --parallel {ln['parallel']}`.", ""]
    if launches:
        cmds = {c.split("--sampler ")[1].split()[0] + "-s" + c.split("--seed ")[1].split()[0]: c
                for c in launches[0]["runs"]}
        L += ["Each run is `nas.search`'s `run_search` with these flags (run from "
              "`experiments/results/search_evidence/`), its trainer behind the cross-run cache of "
              "`search-one` (one training per seed and architecture):", ""]
        L += [f"    python {cmds[n]}" for n in sorted(runs, key=_order) if n in cmds] + [""]
    notes = summary.get("notes")
    if notes:
        L += [notes.strip(), ""]
    ref = summary["reference_point"]
    L += ["## (a) Hypervolume at equal trained-trial counts", "",
          f"Hypervolume of each run's first K trained trials in the (validation accuracy, "
          f"target MACs) plane, accuracy maximised, MACs minimised, against the fixed reference "
          f"point accuracy {ref['accuracy']} (chance on 10 classes), MACs {ref['macs']:,} (the "
          f"budget); units: accuracy x GMACs (the largest possible value is "
          f"{(1 - ref['accuracy']) * ref['macs'] / 1e9:.2f}). Ratio: mean hypervolume over the "
          f"mean of random's on the same seeds; paired: per-seed ratio to random's run of that "
          f"seed (mean, min, max); wins: seeds where the sampler's hypervolume beats random's.",
          "",
          ""]
    L += _hv_table(summary["compare"], ks)
    if summary.get("compare_val_loss"):
        L += ["", "The same trials ranked by validation cross-entropy (stored per trial; "
              "`DEFAULT.signal` became `val_loss` after these runs were launched): quality = "
              "-val_loss, reference point val_loss ln(10) = 2.303 (a uniform guess), MACs the "
              "budget; the samplers themselves were steered by accuracy.", ""]
        L += _hv_table(summary["compare_val_loss"], ks)
    L += ["", "Per run (HV at each K in the same units; '-': fewer than K trained trials so far):", "",
          "| run | trained | " + " | ".join(f"HV@{k}" for k in ks) + " | best accuracy | its MACs "
          "| over budget (not trained) | repeats | failed | mean s/trial | wall s | CPU s |",
          "|---|---:|" + "---:|" * len(ks) + "---:|---:|---:|---:|---:|---:|---:|---:|"]
    meta = summary["runs_meta"]
    for n in sorted(runs, key=_order):
        v = runs[n]
        b = v["best"] or {}
        m = meta.get(n, {})
        L.append(f"| {n} | {v['trained']} | "
                 + " | ".join(_m(v["hv"][k])
                              for k in ks)
                 + f" | {_m(b.get('accuracy'))} | {_m(b.get('target_macs'), '{:,}')} | "
                 f"{v['over_budget']} | {v['repeats']} | {v['failed']} | "
                 f"{_m(v['mean_trial_s'], '{:.1f}')} | {_m(m.get('wall_s'), '{:.0f}')} | "
                 f"{_m(m.get('cpu_s'), '{:.0f}')} |")
    sp = summary.get("shared_prefix") or {}
    if sp:
        L += ["", "Shared start: leading trained trials identical to random's run of the same seed "
              "(same architecture, hence the same cached result): " + ", ".join(
                  f"{n} {v}" for n, v in sorted(sp.items())) + ". A run equal to random's up to "
              "its K can only tie at that K; TPE leaves its random start-up after 10 trials, "
              "NSGA-II after its first generation of 16 (`nas/strategies/optuna_backend.py`)."]
    cpu = [m["cpu_s"] for m in meta.values()]
    if cpu:
        L += ["", f"CPU time of the {len(cpu)} finished search processes: {sum(cpu) / 60:.1f} "
              f"core-minutes in all (from the runner's `wait4` rusage)."]
    if charted:
        L += ["", "![hypervolume vs trials](chart.png)"]
    L += ["", "## (b) Best find vs resnet18 under the reference protocol", ""]
    rt = summary["retrain"]
    if rt:
        p = rt[0]["protocol"]
        L += [f"Reference protocol (the calibration's, `{REFERENCE}`): `{json.dumps(p)}`; data "
              f"subset seed 0 for all runs, training seeds as listed "
              f"(`nas.calibrate.run_one`).", "",
              "| arch | target MACs | target params | seeds | accuracy mean +- std [min, max] | "
              "val_loss mean +- std [min, max] | s/run | CPU s/run | params |",
              "|---|---:|---:|---|---|---|---:|---:|---|"]
        for name in dict.fromkeys(r["name"] for r in rt):
            rs = sorted((r for r in rt if r["name"] == name and r.get("accuracy") is not None),
                        key=lambda r: r["seed"])
            if not rs:
                continue
            a, vl = spread(r["accuracy"] for r in rs), spread(r["val_loss"] for r in rs)
            L.append(f"| {name} | {rs[0]['target_macs']:,} | {rs[0]['target_params']:,} | "
                     f"{', '.join(str(r['seed']) for r in rs)} | {a['mean']:.4f} +- {a['std']:.4f}"
                     f" [{a['min']:.4f}, {a['max']:.4f}] | {vl['mean']:.4f} +- {vl['std']:.4f} "
                     f"[{vl['min']:.4f}, {vl['max']:.4f}] | "
                     f"{statistics.fmean(r['seconds'] for r in rs):.0f} | "
                     f"{statistics.fmean(r['cpu_seconds'] for r in rs):.0f} | "
                     f"`{json.dumps(rs[0]['params'], sort_keys=True)}` |")
        found = next((r.get("found") for r in rt if r.get("found")), None)
        r18 = next((r for r in rt if r["name"] == "resnet18"), None)
        if found:
            L += ["", f"best_found: trial {found['number']} of run `{found['run']}`, search "
                  f"score ({found['signal']}) {found['search_score']:.4f} at "
                  f"{found['target_macs']:,} MACs: the highest of all runs' trained trials at "
                  f"or under resnet18's {r18['target_macs'] if r18 else 1814073344:,} MACs, "
                  f"chosen at {found.get('chosen_utc', '?')} UTC from "
                  + ", ".join(f"{n} ({k} trained)" for n, k in
                              sorted((found.get("trained_per_run") or {}).items(),
                                     key=lambda kv: _order(kv[0]))) + "."]
        L += ["", "Commands: `python experiments/search_evidence.py retrain --arch resnet18 "
              "--seeds 0 1 2` and `... retrain --arch best --seeds 0 1 2`."]
    else:
        L += ["Not run yet."]
    L += ["", f"Report written at load average "
          f"{', '.join(f'{x:.1f}' for x in summary['report_loadavg'])} by "
          "`python experiments/search_evidence.py report`.", ""]
    return "\n".join(L)


def chart(runs, ref, path: Path) -> bool:
    """Hypervolume vs trained trials (mean and min-max band per sampler) and every trained
    point; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"tpe": "tab:blue", "nsga2": "tab:orange", "random": "tab:gray"}
    for s in SAMPLERS:
        curves = []
        for n, ts in runs.items():
            if n.split("-s")[0] != s:
                continue
            pts = run_points(ts)
            curves.append([hypervolume_2d(pts[:k], ref) for k in range(1, len(pts) + 1)])
            a2.scatter([c for _, c in pts], [q for q, _ in pts], s=9, alpha=0.5,
                       color=colors[s], label=s if not a2.get_legend_handles_labels()[1].count(s) else None)
        if not curves:
            continue
        kmax = min(len(c) for c in curves)
        if kmax == 0:
            continue
        import numpy as np

        arr = np.array([c[:kmax] for c in curves])
        x = np.arange(1, kmax + 1)
        a1.plot(x, arr.mean(0), color=colors[s], label=f"{s} (n={len(curves)})")
        a1.fill_between(x, arr.min(0), arr.max(0), color=colors[s], alpha=0.15)
    a1.set_xlabel("trained trials")
    a1.set_ylabel("hypervolume (accuracy x GMACs)")
    a1.set_title("mean over seeds, band = min..max")
    a1.legend()
    a2.set_xlabel("target GMACs")
    a2.set_ylabel("validation accuracy (search protocol)")
    a2.set_title("every trained trial")
    a2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ------------------------------------------------------------------ CLI
def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results folder")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run or resume the searches")
    r.add_argument("--trials", type=int, default=24, help="trained trials per search")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    r.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    r.add_argument("--parallel", type=int, default=3, help="searches at a time (1 worker each)")
    o = sub.add_parser("search-one", help="one search (nas.search flags after --), trainer cached")
    o.add_argument("--cache", required=True, help="the shared result cache (SQLite file)")
    o.add_argument("search_args", nargs=argparse.REMAINDER)
    w = sub.add_parser("warm", help="train random's first proposals of a seed into the cache")
    w.add_argument("--cache", required=True)
    w.add_argument("--seed", type=int, required=True)
    w.add_argument("--n", type=int, default=16, help="first proposals (trained trials)")
    w.add_argument("--part", type=int, default=0)
    w.add_argument("--parts", type=int, default=1)
    t = sub.add_parser("retrain", help="retrain resnet18 or the best find under the reference protocol")
    t.add_argument("--arch", choices=("resnet18", "best"), required=True)
    t.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    sub.add_parser("report", help="write report.md, summary.json, trials.jsonl, chart.png")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return {"run": cmd_run, "retrain": cmd_retrain, "report": cmd_report, "search-one": cmd_search_one, "warm": cmd_warm}[args.cmd](args)
    except NasError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
