"""chainrule against PyTorch (eager and torch.compile), JAX and scikit-learn, side by side in one run.

    python benchmarks/run.py              the full run
    python benchmarks/run.py --quick      fewer samples
    python benchmarks/run.py --check      also compare chainrule/PyTorch ratios with the baseline

The driver imports no numerical library. It first re-executes itself without
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (they pin OpenBLAS to an older, slower kernel), then
starts one worker process per framework (``cases.py --worker``, same clean environment;
the compiled peers torch.compile and JAX are in ``peers.py``, optional: one that cannot be
imported or compiled is reported as "missing: <reason>") and alternates them run by run
(variants of a framework, such as chainrule with NumPy kernels or JAX's lax.scan epoch,
too): a warm-up, then every repeat in a rotated framework order, with a pause between runs
so that one framework's spinning BLAS threads do not slow the next. Peak memory is measured
in a fresh process per framework. Results go to ``benchmarks/results/`` as Markdown and JSON,
dated, and as ``latest.md`` / ``latest.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import bench_rnn  # the recurrent and estimator case definitions; both import only the standard library
import bench_sklearn
import forced_env
from forced_env import FORCED_ENV

HERE = Path(__file__).resolve().parent
CASES_PY = HERE / "cases.py"
NAMES = {"chainrule": "chainrule", "torch": "PyTorch", "torch_compile": "torch.compile", "jax": "JAX",
         "sklearn": "scikit-learn"}
PEERS = ("torch", "torch_compile", "jax", "sklearn")  # the ratio columns (JAX: its faster variant)
COMPILED = ("torch_compile", "jax")  # the "compiled" target: the fastest of these
MEMORY_FRAMEWORKS = ("chainrule", "torch", "sklearn")
#: a variant is a framework run with more parameters, in that framework's worker: name -> (worker,
#: parameters, label). "chainrule" itself runs with the process's defaults (kernels "auto": numba
#: when it is installed; subnormal flush on); "jax" is the jitted step.
VARIANTS = {
    "chainrule:numpy": ("chainrule", {"kernels": "numpy"}, "chainrule, NumPy kernels"),
    "chainrule:noflush": ("chainrule", {"flush": False}, "chainrule, subnormal flush off"),
    "jax:scan": ("jax", {"mode": "scan"}, "JAX, lax.scan epoch"),
}
MLP_PEERS = ("chainrule", "chainrule:numpy", "torch", "torch_compile", "jax", "jax:scan", "sklearn")
RECURRENT_PEERS = ("chainrule", "torch", "torch_compile", "jax", "jax:scan")
MLP_SIZES = (784, 256, 128, 10)
NOISY_SPREAD = 0.25    # (max − min) / median of a case's runs above which more runs are made
PROBE_QUIET = 0.85     # a run counts when the probes around it reach this share of the reference probe
SUSTAINED = 4          # disturbed tries in a row after which runs are kept as they come
CHECK_TOLERANCE = 0.20  # --check fails when a ratio falls more than this below the baseline


def reexec_without_forced_env() -> None:
    """Replace this process by itself, minus the OpenBLAS overrides (before anything loads BLAS),
    telling the new process what was removed."""
    removed = {k: os.environ[k] for k in FORCED_ENV if k in os.environ}
    forced_env.reexec_without_forced_env(__file__, {"CHAINRULE_BENCH_REMOVED": json.dumps(removed)})


def mlp_flops_per_sample(sizes=MLP_SIZES) -> int:
    """Matrix-product FLOPs (2·m·k·n per product) of one sample in one training step.

    forward z = x·W for every layer, dL/dW = xᵀ·δ for every layer, and dL/dx = δ·Wᵀ for
    every layer but the first: no framework here computes the gradient with respect to the
    input data (chainrule skips it, PyTorch's autograd is not asked for it because the input
    does not require grad, scikit-learn's backward loop stops before it).
    """
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    forward = sum(2 * a * b for a, b in pairs)
    return 2 * forward + sum(2 * a * b for a, b in pairs[1:])


# --- the cases -----------------------------------------------------------------------------
def worker_of(name: str) -> str:
    return VARIANTS[name][0] if name in VARIANTS else name


def label_of(name: str) -> str:
    return VARIANTS[name][2] if name in VARIANTS else {"jax": "JAX, jit step"}.get(name, NAMES[name])


@dataclass
class Case:
    id: str
    label: str
    kind: str                      # the method of the cases.py classes
    unit: str
    frameworks: tuple[str, ...]
    params: dict = field(default_factory=dict)
    work: float = 1.0              # units of work per run (samples, steps, GFLOP)
    targets: dict = field(default_factory=dict)   # peer or "compiled" -> minimum chainrule/peer ratio
    peer_case: str | None = None   # take the peers' figures from this case
    checked: bool = True           # part of the --check regression test
    memory: tuple[str, str] | None = None  # (row id, label) of its peak-memory row: one run in a fresh process


#: the batch-512 step's target share of the NumPy matmul peak measured in the same run
STEP_PEAK_TARGET = 0.85


def build_cases(quick: bool) -> list[Case]:
    n = 10_000 if quick else 60_000
    steps = 2_000 if quick else 20_000
    epochs = 1_000 if quick else 5_000
    cases = []
    # the speed targets: MLP ≥ 1.5× PyTorch eager and ≥ 1× the fastest compiled peer
    for batch in (32, 128, 512):
        for momentum in (0.0, 0.9):
            sk_target = {"sklearn": 1.6} if batch == 128 else {}
            cases.append(Case(
                f"mlp_b{batch}" + ("_momentum" if momentum else ""),
                f"MLP 784-256-128-10 fit, batch {batch}, SGD" + (" momentum 0.9" if momentum else ""),
                "mlp", "samples/s", MLP_PEERS, {"samples": n, "batch": batch, "momentum": momentum},
                work=n, targets={"torch": 1.5, "compiled": 1.0, **sk_target},
                memory=("memory", "peak RSS, fresh process, batch-512 epoch")
                if batch == 512 and not momentum else None))
    # the subnormal flush: long enough (1,500+ steps) for decaying momentum to reach the subnormal range
    sub_epochs = 5 if quick else 1
    cases.append(Case("subnormal", f"MLP batch 32, SGD momentum 0.9, {sub_epochs} epoch(s) of {n:,}:"
                      " subnormal flush on (chainrule) / off", "mlp", "samples/s",
                      ("chainrule", "chainrule:noflush"),
                      {"samples": n, "batch": 32, "momentum": 0.9, "epochs": sub_epochs},
                      work=n * sub_epochs, checked=False))
    cases += [
        Case("tiny_222", f"2-2-2 sigmoid, per-sample SGD ({steps:,} steps)", "tiny", "steps/s",
             ("chainrule", "torch"), {"steps": steps}, work=steps, targets={"torch": 10.0}),
        Case("tiny_222_epochs", f"2-2-2 sigmoid, fit(epochs={epochs:,}) on the one sample",
             "tiny_epochs", "steps/s", ("chainrule",), {"steps": epochs}, work=epochs,
             targets={"torch": 10.0}, peer_case="tiny_222"),
        Case("digits", "64-32-16-10 sigmoid digits, per-sample epoch (1,797 steps)", "digits",
             "samples/s", ("chainrule", "torch"), {}, work=1797, targets={"torch": 10.0}),
        Case("predict", f"predict {n:,} x 784 (torch: no_grad)", "predict", "samples/s",
             ("chainrule", "torch"), {"samples": n}, work=n, targets={"torch": 1.2}),
    ]
    # bench_rnn.py's case, the same shapes in quick mode (it is short: quick saves repeats only)
    shape = (f"{bench_rnn.FEATURES}-{bench_rnn.HIDDEN}-{bench_rnn.CLASSES}, seq {bench_rnn.SEQ},"
             f" batch {bench_rnn.BATCH}, fit epoch of {bench_rnn.STEPS} steps (BPTT, SGD)")
    for layer, name in (("rnn", "tanh RNN"), ("lstm", "LSTM"), ("gru", "GRU")):
        memory = (f"memory_{layer}", f"peak RSS, fresh process, one {name} epoch") if layer == "gru" else None
        peers = ("chainrule", "torch") if layer == "rnn" else RECURRENT_PEERS
        cases.append(Case(layer, f"{name} {shape}", "recurrent", "steps/s", peers, {"layer": layer},
                          work=bench_rnn.STEPS, targets={"torch": 2.0 if layer == "rnn" else 1.3},
                          memory=memory))
    # the convolutional and attention cases (the new layer families): LeNet on 28x28 images,
    # one pre-norm transformer block; both frameworks train the same architecture, same optimizer
    images = 2_560 if quick else 10_240
    cases.append(Case("lenet", f"LeNet conv 6-16 (5x5, max-pool 2) + 120-84-10, 28x28x1, batch 64,"
                      f" SGD, fit epoch of {images:,} samples", "lenet", "samples/s",
                      ("chainrule", "torch"), {"samples": images, "batch": 64}, work=images,
                      targets={"torch": 1.0}, memory=("memory_lenet", "peak RSS, fresh process, one LeNet epoch")))
    block_steps = 10 if quick else 30
    cases.append(Case("transformer", "pre-norm transformer block (LayerNorm, 4-head attention, GELU MLP"
                      f" 128-512-128), T 64, batch 32, MSE, Adam, fit of {block_steps} steps",
                      "transformer", "steps/s", ("chainrule", "torch"), {"steps": block_steps},
                      work=block_steps, targets={"torch": 1.0},
                      memory=("memory_transformer", "peak RSS, fresh process, one transformer-block fit")))
    flops = mlp_flops_per_sample() * 512 / 1e9
    cases.append(Case("step_b512", "MLP batch-512 training step, median step time within the epoch",
                      "step", "GFLOP/s", ("chainrule", "torch"), {"samples": n, "batch": 512},
                      work=flops, checked=False))
    reps = 3 if quick else 10
    cases.append(Case("matmul", "float32 matmul 2048 x 2048 (chainrule: NumPy)", "matmul", "GFLOP/s",
                      ("chainrule", "torch"), {"n": 2048, "reps": reps},
                      work=reps * 2 * 2048**3 / 1e9, checked=False))
    # bench_sklearn.py's MNIST-shaped case (its quick variant in quick mode), in samples per second
    # over all epochs. Last: its chainrule side imports scikit-learn and SciPy's own OpenBLAS into
    # the chainrule worker, which also probes the machine, so every other case runs before that.
    # Full runs only: the quick variant's fits last ~65 ms, short enough for a burst of load to
    # swing them 50-fold, and quick mode must stay short.
    if quick:
        return cases
    est = next(c for c in bench_sklearn.cases(quick) if c["data"] == "mnist_like")
    train = est["samples"] - math.ceil(bench_sklearn.TEST_SIZE * est["samples"])  # train_test_split's
    cases.append(Case("sklearn_estimator",
                      f"MLPClassifier fit, {train:,} x 784, hidden {'-'.join(map(str, est['hidden']))},"
                      f" batch {est['batch_size']}, adam, {est['epochs']} epochs (chainrule: float32)",
                      "estimator", "samples/s", ("chainrule", "sklearn"), {"case": est},
                      work=train * est["epochs"], checked=False))
    return cases


# --- workers -------------------------------------------------------------------------------
class Worker:
    """A framework's long-lived process: one JSON command in, one JSON answer out."""

    def __init__(self, name: str, env: dict) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, str(CASES_PY), "--worker", name], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=env, cwd=HERE.parent)
        self.info: dict | None = None
        self.missing: str | None = None

    def wait_ready(self) -> bool:
        line = self.proc.stdout.readline()
        answer = json.loads(line) if line else {"missing": "the worker exited at start (see stderr)"}
        if "missing" in answer:
            self.missing = answer["missing"]
            self.proc.wait()
            return False
        self.info = answer["info"]
        return True

    def call(self, kind: str, params: dict) -> dict:
        try:
            self.proc.stdin.write(json.dumps({"case": kind, "params": params}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except OSError:  # the worker died earlier (its error is on stderr)
            line = ""
        return json.loads(line) if line else {"error": f"{self.name} worker exited"}

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            self.proc.wait(timeout=30)


def start_workers(names, env) -> tuple[dict[str, Worker], dict[str, str]]:
    """The workers that started, and for each that did not the reason ("missing: <reason>")."""
    workers = {name: Worker(name, env) for name in names}
    ready, missing = {}, {}
    for name, worker in workers.items():
        if worker.wait_ready():
            ready[name] = worker
        else:
            missing[name] = worker.missing
            print(f"  {NAMES[name]}: missing: {worker.missing} (pip install -e '.[bench]')", flush=True)
    return ready, missing


def noisy(values: list[float]) -> bool:
    return len(values) > 1 and (max(values) - min(values)) / statistics.median(values) > NOISY_SPREAD


class Runner:
    """Timed runs, each between two probes of the machine's speed.

    The probe, in the chainrule worker, measures arithmetic (NumPy matmuls), memory (a gather
    of random rows) and the mix of a training step (plain-NumPy MLP steps). Other users of
    this machine slow things down, sometimes only some of these: a run whose probe before or
    after it fell below PROBE_QUIET of the reference (the 90th percentile of the probes so
    far), on any measure, is discarded and made again, up to ``attempts`` times, the same for
    every framework. Retrying only helps against short bursts: after SUSTAINED disturbed
    tries in a row the machine is taken to be slow for a while, and runs are kept as they come
    until a quiet probe is seen again.
    """

    def __init__(self, workers: dict[str, Worker], settle: float, attempts: int,
                 missing: dict[str, str] | None = None) -> None:
        self.workers, self.settle, self.attempts = workers, settle, attempts
        self.missing = missing or {}
        self.prober = workers.get("chainrule")
        self.history: dict[str, list[float]] = {}
        self.last: dict | None = None  # the probe after the last run, the next run's "before"
        self.discarded = 0
        self.streak = 0  # disturbed tries in a row
        self.log: list = []  # (framework, case, attempt, probes) of every timed try
        for _ in range(5):
            self.probe()

    def probe(self) -> dict | None:
        if self.prober is None:
            return None
        time.sleep(self.settle)  # let the last run's BLAS or OpenMP threads go idle
        answer = self.prober.call("probe", {})
        if "error" in answer:
            return None
        self.last = {k: v for k, v in answer.items() if k != "seconds"}
        for k, v in self.last.items():
            self.history.setdefault(k, []).append(v)
        return self.last

    def reference(self) -> dict[str, float]:
        return {k: sorted(v)[int(0.9 * (len(v) - 1))] for k, v in self.history.items()}

    def quiet(self, probe: dict) -> bool:
        ref = self.reference()
        return all(v >= PROBE_QUIET * ref[k] for k, v in probe.items())

    def run(self, name: str, case: Case, timed: bool = True) -> dict:
        """One run of ``case`` by framework or variant ``name``."""
        worker = self.workers[worker_of(name)]
        params = case.params | (VARIANTS[name][1] if name in VARIANTS else {})
        if not timed:  # a warm-up: no probes
            time.sleep(self.settle)
            self.last = None
            return worker.call(case.kind, params)
        for attempt in range(1, self.attempts + 1):
            before = self.last if self.last is not None else self.probe()
            time.sleep(self.settle)
            self.last = None
            answer = worker.call(case.kind, params)
            if "error" in answer:
                return answer
            after = self.probe()
            probes = [p for p in (before, after) if p is not None]
            answer["probes"] = probes
            self.log.append((name, case.id, attempt, probes))
            quiet = all(self.quiet(p) for p in probes)
            self.streak = 0 if quiet else self.streak + 1
            if quiet or attempt == self.attempts or self.streak > SUSTAINED:
                answer["attempts"] = attempt
                return answer
            self.discarded += 1
        raise AssertionError("unreachable")


def run_case(case: Case, runner: Runner, repeats: int, extra: int, warmup: int) -> dict:
    """Warm-up rounds, then ``repeats`` runs per framework, alternating in a rotated order.

    While some framework's runs still spread by more than NOISY_SPREAD, up to ``extra`` more
    rounds are run, so the median stands on more runs.
    """
    names = [n for n in case.frameworks if worker_of(n) in runner.workers]
    runs: dict[str, list[float]] = {n: [] for n in names}
    extras: dict[str, dict] = {n: {} for n in names}  # compile time (first call), kernels, subnormals
    shares: dict[str, list[float]] = {n: [] for n in names}  # GFLOP/s over the same run's peak
    attempts: dict[str, list[int]] = {n: [] for n in names}
    errors: dict[str, str] = {n: f"missing: {runner.missing[worker_of(n)]}" for n in case.frameworks
                              if worker_of(n) in runner.missing}
    for r in range(1 - warmup, repeats + extra + 1):  # rounds r <= 0 warm up
        if r > repeats and not any(noisy(v) for v in runs.values()):
            break
        order = names[r % len(names):] + names[:r % len(names)] if names else []  # rotated
        for name in order:
            if name in errors:
                continue
            answer = runner.run(name, case, timed=r > 0)
            if "error" in answer:  # a failed compilation, too: the peer is missing from this row
                errors[name] = f"missing: {answer['error']}"
                print(f"    {label_of(name)}: missing: {answer['error']}", flush=True)
                continue
            if "compile_s" in answer:  # the first call of a compiled peer, timed apart
                extras[name].setdefault("compile_s", answer["compile_s"])
            if r > 0:
                for key in ("kernels", "mode"):
                    if key in answer:
                        extras[name][key] = answer[key]
                if "subnormals" in answer:
                    extras[name].setdefault("subnormals", []).append(answer["subnormals"])
                    extras[name]["state_values"] = answer["state_values"]
                runs[name].append(case.work / answer["seconds"])
                attempts[name].append(answer["attempts"])
                if "peak_gflops" in answer:
                    shares[name].append(case.work / answer["seconds"] / answer["peak_gflops"])
    result = {n: summarize(v) | {"attempts": attempts[n]} | extras[n] for n, v in runs.items() if v}
    for n, v in shares.items():
        if v and n in result:
            result[n]["peak_share"] = summarize(v)
    return result | {f"error_{n}": e for n, e in errors.items()}


def summarize(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}


def measure_memory(names, case: Case, env: dict) -> dict:
    """Peak RSS of a fresh process per framework that builds the case's data and model and
    makes one run of it (ru_maxrss; "setup" is VmHWM before the run)."""
    result = {}
    for name in names:
        if name not in case.frameworks or name not in MEMORY_FRAMEWORKS:
            continue
        proc = subprocess.run(
            [sys.executable, str(CASES_PY), "--memory", name, "--kind", case.kind,
             "--params", json.dumps(case.params)],
            capture_output=True, text=True, env=env, cwd=HERE.parent)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode == 0 and lines:
            result[name] = json.loads(lines[-1])
        else:
            print(f"    memory ({case.id}), {NAMES[name]}: failed ({proc.stderr.strip().splitlines()[-1:]})")
    return result


# --- the machine ---------------------------------------------------------------------------
def cpu_model() -> str:
    fields = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    flags = fields.get("flags", "").split()
    simd = [f for f in ("avx2", "fma", "avx512f") if f in flags]
    return (f"{fields.get('model name', '?')} (family {fields.get('cpu family', '?')},"
            f" model {fields.get('model', '?')}; {', '.join(simd)})")


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=HERE.parent, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "src"],
                               capture_output=True, text=True, cwd=HERE.parent).stdout.strip()
        return head + (" (src modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def blas_lines(workers: dict[str, Worker]) -> list[str]:
    """One line per framework: versions, BLAS library, the kernel OpenBLAS chose, threads."""
    lines = []
    for name, worker in workers.items():
        info = worker.info or {}
        pools = [p for p in info.get("threadpools", []) if p.get("user_api") == "blas"]
        blas = "; ".join(
            f"{p.get('internal_api')} {p.get('version')} ({p.get('prefix')}), kernel"
            f" {p.get('architecture')}, {p.get('num_threads')} threads" for p in pools)
        if name == "chainrule":
            lines.append(f"chainrule {info.get('chainrule')} (imported from {info.get('path')}) on NumPy"
                         f" {info.get('numpy')}: {blas}")
        elif name == "torch":
            omp = [p for p in info.get("threadpools", []) if p.get("user_api") == "openmp"]
            lines.append(f"PyTorch {info.get('torch')}: BLAS {', '.join(info.get('blas', [])) or '?'},"
                         f" oneDNN {'on' if info.get('mkldnn') else 'off'}, torch.set_num_threads("
                         f"{info.get('num_threads')}), OpenMP {omp[0].get('num_threads') if omp else '?'}"
                         " threads")
        elif name == "torch_compile":
            lines.append(f"torch.compile (PyTorch {info.get('torch')}): {info.get('compile')}, C++ compiler"
                         f" {info.get('cxx')}, torch.set_num_threads({info.get('num_threads')})")
        elif name == "jax":
            lines.append(f"JAX {info.get('jax')} (jaxlib {info.get('jaxlib')}), float32, devices"
                         f" {', '.join(info.get('devices', []))}")
        else:
            lines.append(f"scikit-learn {info.get('scikit-learn')} (SciPy {info.get('scipy')},"
                         f" NumPy {info.get('numpy')}): {blas}")
        if name == "chainrule":
            lines[-1] += (f"; kernels {info.get('kernels')} by default, subnormal flush"
                          f" {'on' if info.get('flush') else 'off'}")
    return lines


def machine_info(workers: dict[str, Worker]) -> dict:
    removed = json.loads(os.environ.get("CHAINRULE_BENCH_REMOVED", "{}"))
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "commit": git_commit(),
        "removed_env": removed,
        "env_now": {k: os.environ.get(k) for k in FORCED_ENV},
        "blas": blas_lines(workers),
        "workers": {n: w.info for n, w in workers.items()},
    }


# --- the table -----------------------------------------------------------------------------
def fmt_num(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def fmt_fig(fig: dict | None) -> str:
    if not fig:
        return "–"
    return f"{fmt_num(fig['median'])} ({fmt_num(fig['min'])}–{fmt_num(fig['max'])})"


def fmt_pct(x: float) -> str:
    return f"{100 * x:.1f} %" if x < 0.01 else f"{100 * x:.0f} %"


def verdict(ratio: float | None, target: float | None, higher_is_better: bool = True) -> str:
    if ratio is None or target is None:
        return ""
    if higher_is_better:
        return f"≥ {target:g}×: {'met' if ratio >= target else f'missed by {fmt_pct(1 - ratio / target)}'}"
    return f"≤ {target:g}×: {'met' if ratio <= target else f'missed by {fmt_pct(ratio / target - 1)}'}"


def build_rows(cases: list[Case], results: dict, memory: dict[str, dict]) -> list[dict]:
    """Table rows: per case the figures, the ratios chainrule/peer and the target verdicts."""
    rows = []
    for case in cases:
        res = results.get(case.id, {})
        peer_case = next((c for c in cases if c.id == case.peer_case), None)
        peer_res = results.get(case.peer_case, {}) if case.peer_case else res
        frameworks = (peer_case or case).frameworks
        figs = {"chainrule": res.get("chainrule")} | {p: peer_res.get(p) for p in frameworks if p != "chainrule"}
        variants = {n: f for n, f in figs.items() if f}  # every framework and variant that ran
        jax = [figs[n] for n in ("jax", "jax:scan") if figs.get(n)]
        figs["jax"] = max(jax, key=lambda f: f["median"]) if jax else None  # JAX's figure: its faster variant
        missing = {n: res.get(f"error_{n}") or peer_res.get(f"error_{n}") for n in frameworks
                   if res.get(f"error_{n}") or peer_res.get(f"error_{n}")}
        ratios = {p: figs["chainrule"]["median"] / figs[p]["median"]
                  for p in PEERS if figs["chainrule"] and figs.get(p)}
        compiled = [p for p in COMPILED if p in ratios]
        if compiled and len(compiled) == sum(p in frameworks for p in COMPILED):
            ratios["compiled"] = min(ratios[p] for p in compiled)  # against the fastest compiled peer
        targets = []
        for p, t in case.targets.items():
            who = "fastest of JAX and torch.compile" if p == "compiled" else NAMES[p]
            if p in ratios:
                targets.append(verdict(ratios[p], t) + f" {who}")
            elif figs["chainrule"] and (p in frameworks or p == "compiled"):
                targets.append(f"≥ {t:g}×: not measured ({who} missing)")
        rows.append({"id": case.id, "label": case.label, "unit": case.unit, "figures": figs,
                     "variants": variants, "missing": missing, "ratios": ratios, "targets": targets,
                     "checked": case.checked, "peers_from": case.peer_case,
                     "frameworks": list(frameworks)})
    # efficiency: matrix-product FLOP/s of the batch-512 step over NumPy's matmul peak, from the
    # median step time (the target) and from the whole epoch through fit (shuffle, checks)
    peak = results.get("matmul", {}).get("chainrule")
    step, b512 = results.get("step_b512", {}), results.get("mlp_b512", {})
    if peak and (step or b512):
        flops = mlp_flops_per_sample()
        eff = {}
        for n in NAMES:
            if n in step:  # each run's step GFLOP/s over the peak measured right after it
                eff.setdefault(n, {})["step"] = step[n]["peak_share"]["median"]
            if n in b512:
                eff.setdefault(n, {})["epoch"] = b512[n]["median"] * flops / 1e9 / peak["max"]
        share = eff.get("chainrule", {}).get("step")
        targets = []
        if share is not None:
            met = "met" if share >= STEP_PEAK_TARGET else f"missed by {100 * (STEP_PEAK_TARGET - share):.0f} points"
            targets.append(f"chainrule step ≥ {100 * STEP_PEAK_TARGET:.0f} %: {met}")
        rows.append({"id": "efficiency", "label": "batch-512 step, share of the NumPy matmul peak"
                     " (step / whole epoch)", "unit": "% of peak", "figures": eff, "ratios": {},
                     "targets": targets, "checked": False,
                     "peak_gflops": peak["max"], "flops_per_sample": flops})
    labels = dict(c.memory for c in build_cases(quick=False) if c.memory)  # (labels are the same in quick mode)
    for row_id, measured in memory.items():  # one row per measured case: peak RSS of each framework
        figs = {n: {"median": m["peak_mib"], "setup": m["setup_peak_mib"]} for n, m in measured.items()}
        ratios = {p: figs["chainrule"]["median"] / figs[p]["median"] for p in PEERS
                  if "chainrule" in figs and p in figs}
        targets = []
        if "torch" in ratios:
            targets.append(verdict(ratios["torch"], 1.0, higher_is_better=False) + " PyTorch")
            grown = {n: f["median"] - f["setup"] for n, f in figs.items()}
            if grown["torch"] > 0:  # the run's own growth, without the interpreter, framework and data
                targets.append(f"run's growth {grown['chainrule']:.0f} / {grown['torch']:.0f} MiB ="
                               f" {grown['chainrule'] / grown['torch']:.2f}×")
        rows.append({"id": row_id, "label": labels.get(row_id, row_id), "unit": "MiB", "figures": figs,
                     "ratios": ratios, "targets": targets, "checked": False})
    return rows


def missing_cell(row: dict, name: str) -> str | None:
    """"missing: <reason>" when ``name`` (or, for JAX, both its variants) was meant to run in this
    row and did not; None otherwise."""
    names = ("jax", "jax:scan") if name == "jax" else (name,)
    reasons = [row.get("missing", {}).get(n) for n in names if n in row.get("frameworks", ())]
    if reasons and all(reasons):
        reason = reasons[0].removeprefix("missing: ")
        return f"missing: {reason[:60]}{'…' if len(reason) > 60 else ''}"
    return None


def render_table(rows: list[dict]) -> str:
    head = ["case", "unit", "chainrule", "PyTorch", "torch.compile", "JAX (best)", "scikit-learn",
            "chainrule / PyTorch", "chainrule / torch.compile", "chainrule / JAX", "chainrule / scikit-learn",
            "target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for row in rows:
        figs = row["figures"]
        if row["id"] == "efficiency":
            cells = [" / ".join(f"{100 * figs[n][k]:.0f} %" if k in figs[n] else "–" for k in ("step", "epoch"))
                     if n in figs else "–" for n in NAMES]
        elif row["unit"] == "MiB":
            cells = [f"{figs[n]['median']:.0f} (setup {figs[n]['setup']:.0f})" if n in figs else "–"
                     for n in NAMES]
        else:
            cells = [missing_cell(row, n) or fmt_fig(figs.get(n)) for n in NAMES]
        ratios = [f"{row['ratios'][p]:.2f}×" if p in row["ratios"] else "–" for p in PEERS]
        lines.append("| " + " | ".join([row["label"], row["unit"], *cells, *ratios,
                                         "; ".join(row["targets"])]) + " |")
    return "\n".join(lines)


def render_details(rows: list[dict]) -> str:
    """Per row: every framework and variant, the compiled peers' compile time (their first call,
    kept out of the figures), chainrule's kernels and, for the subnormal row, the count."""
    lines = []
    for row in rows:
        variants = row.get("variants", {})
        if not row.get("missing") and not any(n in VARIANTS or n in COMPILED for n in variants):
            continue  # nothing beyond the table's columns
        parts = []
        for name, fig in variants.items():
            part = f"{label_of(name)} {fmt_fig(fig)}"
            if "kernels" in fig and name == "chainrule":
                part += f" (kernels {fig['kernels']})"
            if "compile_s" in fig:
                part += f", first call {fig['compile_s']:.1f} s"
            parts.append(part)
        parts += [f"{label_of(n)} {reason}" for n, reason in row.get("missing", {}).items()]
        line = f"- {row['label']} ({row['unit']}): " + "; ".join(parts)
        ours, numpy = variants.get("chainrule"), variants.get("chainrule:numpy")
        if ours and numpy:
            line += f". chainrule {ours.get('kernels', '?')} / NumPy kernels: {ours['median'] / numpy['median']:.2f}×"
        off = variants.get("chainrule:noflush")
        if ours and off:
            line += f". Flush on / off: {ours['median'] / off['median']:.2f}×"
            for name, fig in (("on", ours), ("off", off)):
                if "subnormals" in fig:
                    line += (f"; subnormal momentum values after a run, flush {name}: "
                             f"{max(fig['subnormals']):,} of {fig['state_values']:,} at most")
        lines.append(line)
    return "\n".join(lines)


def render_markdown(report: dict, table: str) -> str:
    m, ref = report["machine"], report["reference_probe"]
    removed = ", ".join(f"{k}={v}" for k, v in m["removed_env"].items()) or "none were set"
    eff = next((r for r in report["rows"] if r["id"] == "efficiency"), None)
    lines = [
        f"# chainrule benchmarks, {report['date']} ({report['mode']} run)",
        "",
        f"- CPU: {m['cpu']}; {m['cores']} cores, {m['usable_cores']} usable; {m['system']};"
        f" Python {m['python']}; chainrule commit {m['commit']}",
        *[f"- {line}" for line in m["blas"]],
        f"- removed from the environment before any BLAS loaded: {removed}",
        f"- {report['repeats']} timed runs per framework and case after {report['warmup']} warm-up runs (up to"
        f" {report['repeats'] + report['extra']} when the runs spread by more than"
        f" {100 * NOISY_SPREAD:.0f} %); {report['discarded_runs']} runs were discarded and made again"
        f" because a probe just before or after them (NumPy matmuls, a gather of random rows, plain-NumPy"
        f" MLP steps) ran below {100 * PROBE_QUIET:.0f} % of the reference (the 90th percentile of the"
        f" probes: {ref.get('gflops', 0):.0f} GFLOP/s, {ref.get('gather_gbps', 0):.1f} GB/s,"
        f" {ref.get('numpy_steps_per_s', 0):.0f} steps/s), up to {report['attempts']} tries; frameworks"
        " alternating run by run; figures are medians (min–max); ratios are of the medians;"
        " higher is better except for memory",
        f"- noise: the NumPy matmul peak (a fixed workload) varied by {100 * report['noise']:.0f} %"
        " (max − min over median) during the run" if report["noise"] is not None else "- noise: not measured",
        f"- speed: the median probe of plain-NumPy MLP steps ran at {100 * report['speed']:.0f} % of the reference"
        " during the run (other users of the host slow it for minutes at a time)"
        if report.get("speed") is not None else "- speed: not probed",
        "",
        table,
        "",
        "Each framework and variant (figures: median (min–max); \"first call\": the compiled peers'"
        " compilation and first step or epoch, kept out of the figures):",
        "",
        render_details(report["rows"]),
        "",
    ]
    if eff:
        lines.append(f"Efficiency: {eff['flops_per_sample']:,} matrix-product FLOPs per sample and step"
                     " (forward, dL/dW of every layer, dL/dx of every layer but the first: no framework"
                     " computes dL/dx of the input data), over the NumPy float32 2048 x 2048 matmul peak (the"
                     f" best of its runs: {eff['peak_gflops']:.0f} GFLOP/s) measured in the same run."
                     " \"step\" divides by the median step time within an epoch (the step_b512 row;"
                     " for chainrule the batch gather is inside the step) and by the peak measured again"
                     " right after that epoch, so that both see the same load on this shared machine;"
                     " the median over the runs is shown. \"Whole epoch\" divides by the epoch"
                     " time through `fit` (the mlp_b512 row: shuffling and the input checks included).")
        lines.append("")
    return "\n".join(lines)


# --- regression check ----------------------------------------------------------------------
def check_against_baseline(report: dict, baseline_path: Path) -> int:
    if not baseline_path.exists():
        print(f"check: no baseline at {baseline_path}; run with --save-baseline first")
        return 2
    baseline = json.loads(baseline_path.read_text()).get(report["mode"])
    if not baseline:
        print(f"check: {baseline_path} has no {report['mode']} baseline")
        return 2
    failed, unbased = [], []
    print(f"\ncheck: chainrule/PyTorch ratios against {baseline_path.name} ({baseline['date']})")
    for row in report["rows"]:
        base = baseline["ratios_vs_torch"].get(row["id"])
        now = row["ratios"].get("torch")
        if not row["checked"] or now is None:
            continue
        if base is None:  # a case newer than the baseline: nothing to compare with yet
            unbased.append(row["id"])
            print(f"  {row['id']:18s} no baseline       now {now:6.2f}×  skipped")
            continue
        change = now / base - 1
        bad = change < -CHECK_TOLERANCE
        failed += [row["id"]] if bad else []
        print(f"  {row['id']:18s} baseline {base:6.2f}×  now {now:6.2f}×  {100 * change:+5.0f} %"
              f"{'  REGRESSION' if bad else ''}")
    if failed:
        print(f"check failed: {', '.join(failed)} fell more than {100 * CHECK_TOLERANCE:.0f} % below the baseline")
        return 1
    print("check passed" + (f" ({', '.join(unbased)}: no baseline, not checked)" if unbased else ""))
    return 0


def save_baseline(report: dict, path: Path) -> None:
    baseline = json.loads(path.read_text()) if path.exists() else {}
    baseline[report["mode"]] = {
        "date": report["date"], "commit": report["machine"]["commit"],
        "ratios_vs_torch": {r["id"]: r["ratios"]["torch"] for r in report["rows"]
                            if r["checked"] and "torch" in r["ratios"]},
    }
    path.write_text(json.dumps(baseline, indent=2) + "\n")
    print(f"baseline for the {report['mode']} run written to {path}")


# --- main ----------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="chainrule against PyTorch, torch.compile, JAX and scikit-learn.")
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a chainrule/PyTorch ratio falls >20 %% below the baseline")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per case (default 7, quick 5)")
    parser.add_argument("--cases", default=None, help="comma-separated case ids to run (default: all)")
    parser.add_argument("--save-baseline", action="store_true",
                        help="write this run's ratios as the baseline for its mode")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    repeats = args.repeats or (5 if args.quick else 7)
    warmup = 1 if args.quick else 2  # untimed rounds (the first timed run was still slow after one)
    extra = 1 if args.quick else 4  # more rounds allowed when the runs are noisy (quick: keeps it under 2 min)
    attempts = 2 if args.quick else 3  # tries of a run disturbed by another process
    settle = 0.15  # s before each run and probe: OpenBLAS threads spin ~0.1 s after their last call
    now = dt.datetime.now().astimezone()
    start = time.perf_counter()

    env = forced_env.clean_env()
    print(f"chainrule benchmarks, {now:%Y-%m-%d %H:%M %Z}, {mode} run", flush=True)
    workers, missing = start_workers(NAMES, env)
    machine = machine_info(workers) | {"missing": missing}
    print(f"CPU: {machine['cpu']}; {machine['cores']} cores ({machine['usable_cores']} usable)")
    for line in machine["blas"]:
        print(line)
    removed = ", ".join(f"{k}={v}" for k, v in machine["removed_env"].items()) or "none were set"
    print(f"removed from the environment: {removed}\n", flush=True)

    cases = build_cases(args.quick)
    if args.cases:
        wanted = set(args.cases.split(","))
        cases = [c for c in cases if c.id in wanted]
    results = {}
    runner = Runner(workers, settle, attempts, missing)
    try:
        for case in cases:
            t0 = time.perf_counter()
            results[case.id] = run_case(case, runner, repeats, extra, warmup)
            res = results[case.id]
            figs = "  ".join(f"{label_of(n)} {fmt_fig(res.get(n)) if n in res else res.get(f'error_{n}', '–')}"
                             for n in case.frameworks)
            print(f"  {case.label}: {figs} {case.unit} [{time.perf_counter() - t0:.0f} s]", flush=True)
    finally:
        for worker in workers.values():
            worker.close()
    memory = {}
    # a peak-memory row for each selected case that has one ("memory" alone: the batch-512 epoch's)
    picked = {c.id for c in cases} | set(args.cases.split(",") if args.cases else ())
    for case in build_cases(args.quick):
        if case.memory and (case.id in picked or case.memory[0] in picked):
            memory[case.memory[0]] = measure_memory(list(workers), case, env)
            print(f"  {case.memory[1]}: " + "  ".join(
                f"{NAMES[n]} {m['peak_mib']:.0f} MiB" for n, m in memory[case.memory[0]].items()), flush=True)

    peak = results.get("matmul", {}).get("chainrule")
    noise = (peak["max"] - peak["min"]) / peak["median"] if peak else None
    # how fast the machine ran during the timed runs: the median probe over the reference probe
    steps = [p["numpy_steps_per_s"] for *_, probes in runner.log for p in probes if "numpy_steps_per_s" in p]
    speed = statistics.median(steps) / runner.reference()["numpy_steps_per_s"] if steps else None
    if (noise is not None and noise > 0.15) or (speed is not None and speed < 0.9):
        print(f"warning: the machine was busy (matmul peak spread {100 * (noise or 0):.0f} %, probes at"
              f" {100 * (speed or 1):.0f} % of their reference); other users share it, so the figures are"
              " noisy: run again", flush=True)
    rows = build_rows(cases, results, memory)
    table = render_table(rows)
    report = {"date": now.isoformat(timespec="seconds"), "mode": mode, "seconds": round(time.perf_counter() - start, 1),
              "repeats": repeats, "warmup": warmup, "extra": extra, "attempts": attempts,
              "discarded_runs": runner.discarded, "reference_probe": runner.reference(), "noise": noise,
              "speed": speed, "machine": machine, "rows": rows, "results": results, "memory": memory,
              "probe_log": runner.log}
    print("\n" + table + "\n")
    print(render_details(rows) + "\n")
    markdown = render_markdown(report, table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{now:%Y-%m-%d_%H%M%S}_{mode}"
    for name in (stem, "latest"):
        (args.out / f"{name}.md").write_text(markdown)
        (args.out / f"{name}.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    speed_note = f"; probes at {100 * speed:.0f} % of their reference" if speed is not None else ""
    print(f"written: {args.out / stem}.md/.json and latest.md/.json ({report['seconds']:.0f} s in all;"
          f" {runner.discarded} disturbed runs made again{speed_note})")
    if args.save_baseline:
        save_baseline(report, args.out / "baseline.json")
    if args.check:
        return check_against_baseline(report, args.out / "baseline.json")
    return 0


if __name__ == "__main__":
    reexec_without_forced_env()
    sys.exit(main())
