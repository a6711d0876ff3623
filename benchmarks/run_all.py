"""mispec benchmarks — ``make bench`` (``--quick`` for a smoke run of a few minutes).

Measures, in ONE run, on the same checkpoints, prompts and metrics (loss, per-token loss,
induction score, previous-token score): the naive TransformerLens notebook loop, the compute
floor, and mispec cold / warm / after one metric's arguments changed, at two scales (at toy
scale also cold with ``BATCHED_K`` checkpoints per forward call, ``batch_checkpoints``); then
peak RSS of a mispec run at 25 vs 100 checkpoints, training throughput, 4 seeds trained
together vs one at a time (``seeds_together.py``), the default study end
to end with serial vs parallel training processes (``study.py``: the one part that includes
training), a 2-point sweep in lanes vs its points one after another (``sweep_lanes.py``),
and CLI latency. Prints tables of ratios against the targets of issues 8 and 20 and
writes ``<work>/latest.json`` and ``<work>/latest.md``. Elsewhere training time is excluded:
the toy is trained once into a shared checkpoint store before any timing (``fixtures.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import (  # noqa: E402
    baselines,
    cli_latency,
    fixtures,
    mispec_runs,
    seeds_together,
    study,
    sweep_lanes,
    throughput,
)
from benchmarks.common import (  # noqa: E402
    PYTHON,
    Timing,
    best_timing,
    fmt_ratio,
    fmt_s,
    fresh_dir,
    load_average,
    machine,
    markdown_table,
    run_child,
    timed,
)

METHODS = (
    "naive",
    "floor",
    "mispec cold",
    "mispec warm",
    "mispec changed",
    "mispec cold, no act. cache",
)
TOL = 1e-3  # max |difference| of any metric value between contenders
BATCHED_TOL = 1e-6  # batched checkpoints against the cold run (issue 20)
BATCHED_K = 8  # checkpoints per forward call of the batched contender (toy scale)


def batched_method(k: int) -> str:
    return f"mispec cold, batched checkpoints ({k})"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')} load {load_average()[0]:.2f}] {msg}", flush=True)


# ------------------------------------------------------------------------- one scale
def measure_scale(
    scale: fixtures.Scale,
    *,
    naive: Any,
    floor: Any,
    warmup: Any,
    specs: dict[str, Path],
    work: Path,
    shared_store: Path | None,
    batched: int | None = None,
) -> dict[str, Any]:
    """``naive``/``floor``/``warmup``: callables; mispec runs read ``specs``; ``batched``:
    also a cold run evaluating that many checkpoints per forward call."""
    n = len(scale.steps)
    log(f"{scale.key}: warm-up")
    warmup()
    methods = METHODS + ((batched_method(batched),) if batched else ())
    timings: dict[str, list[Timing]] = {m: [] for m in methods}
    counters: dict[str, dict[str, int]] = {}
    results: dict[str, Any] = {}
    for rep in range(scale.repeats):
        # the previous repetition's store and run: deleted (and synced) before any timing
        for name in (scale.key, f"{scale.key}-nocache"):
            fresh_dir(work / "stores" / name)
        for name in (scale.key, f"{scale.key}-nc"):
            fresh_dir(work / "runs" / name)
        log(f"{scale.key} rep {rep + 1}/{scale.repeats}: naive")
        with timed() as t:
            results["naive"] = naive()
        timings["naive"].append(t)
        log(f"{scale.key}: floor")
        with timed() as t:
            results["floor"] = floor()
        timings["floor"].append(t)
        store = fixtures.cold_store(work / "stores" / scale.key, shared_store)
        out = work / "runs" / scale.key
        for method, spec in (
            ("mispec cold", specs["base"]),
            ("mispec warm", specs["base"]),
            ("mispec changed", specs["changed"]),
        ):
            log(f"{scale.key}: {method}")
            t, c = mispec_runs.run_spec(spec, store, out)
            timings[method].append(t)
            counters[method] = c
            if method == "mispec cold":
                results["mispec"] = mispec_runs.read_results(out, scale.model)
        # the same cold run with every activation-cache policy at skip, in its own fresh store
        method = "mispec cold, no act. cache"
        log(f"{scale.key}: {method}")
        bare = fixtures.cold_store(work / "stores" / f"{scale.key}-nocache", shared_store)
        t, c = mispec_runs.run_spec(specs["nocache"], bare, work / "runs" / f"{scale.key}-nc")
        timings[method].append(t)
        counters[method] = c
        if batched:  # the cold run, several checkpoints per forward call, its own fresh store
            method = batched_method(batched)
            log(f"{scale.key}: {method}")
            name = f"{scale.key}-batched"
            store = fixtures.cold_store(work / "stores" / name, shared_store)
            out = fresh_dir(work / "runs" / name)
            profile = mispec_runs.write_batched_profile(work, batched)
            t, c = mispec_runs.run_spec(specs["base"], store, out, profile)
            timings[method].append(t)
            counters[method] = c
            results["batched"] = mispec_runs.read_results(out, scale.model)
            calls = -(-n // batched)  # ceil: the runs of consecutive groups, chunked
            _require(
                c["forward_passes"] == n and c["batched_forward_calls"] == calls,
                f"batched cold run: {c} (expected {calls} batched calls)",
            )
        _check_counters(scale, counters)
    checks = {
        "naive_vs_floor": baselines.max_difference(results["naive"], results["floor"]),
        "mispec_vs_floor": baselines.max_difference(results["mispec"], results["floor"]),
    }
    if batched:
        checks["batched_vs_floor"] = baselines.max_difference(results["batched"], results["floor"])
        vs_cold = baselines.max_difference(results["batched"], results["mispec"])
        checks["batched_vs_cold"] = vs_cold
        _require(max(vs_cold.values()) <= BATCHED_TOL, f"batched vs cold run: {vs_cold}")
    bad = {k: v for k, v in checks.items() if max(v.values()) > TOL}
    if bad:
        warnings.warn(f"{scale.key}: contenders disagree beyond {TOL}: {bad}", stacklevel=1)
    best = {m: best_timing(ts) for m, ts in timings.items()}
    return {
        "title": scale.title,
        "checkpoints": n,
        "steps": list(scale.steps),
        "prompts": [scale.n_prompts, scale.seq_len],
        "repeats": scale.repeats,
        "wall": {m: t.wall for m, t in best.items()},
        "cpu": {m: t.cpu for m, t in best.items()},
        "all_wall": {m: [round(t.wall, 4) for t in ts] for m, ts in timings.items()},
        "counters": counters,
        "agreement_max_abs_diff": checks,
        "agreement_ok": not bad,
    }


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise RuntimeError(message)


def _check_counters(scale: fixtures.Scale, c: dict[str, dict[str, int]]) -> None:
    n = len(scale.steps)
    cold, warm, changed = c["mispec cold"], c["mispec warm"], c["mispec changed"]
    _require(cold["training_steps"] == 0, f"cold run trained: {cold}")
    _require(
        cold["forward_passes"] == n, f"cold run: {cold['forward_passes']} forward passes != {n}"
    )
    _require(warm["forward_passes"] == 0 and warm["cells_computed"] == 0, f"warm did work: {warm}")
    _require(changed["forward_passes"] == 0, f"changed-metric run did forward passes: {changed}")
    _require(changed["cells_computed"] == n, f"changed-metric run: {changed}")
    bare = c["mispec cold, no act. cache"]
    _require(
        bare["forward_passes"] == n and bare["activations_written"] == 0,
        f"the no-cache cold run: {bare}",
    )


def toy(work: Path, n_ckpts: int, repeats: int) -> dict[str, Any]:
    scale = fixtures.toy_scale(n_ckpts, repeats)
    specs = fixtures.write_specs(scale, work)
    shared = work / "toy-train"
    log(f"toy: training the toy once into {shared} (not timed)")
    ck = fixtures.toy_checkpoints(scale, specs["base"], shared)
    tokens = scale.tokens()
    files, cfg = ck["files"], ck["tl_config"]
    first = dict(list(files.items())[:2])
    warm_scale = fixtures.toy_scale(2, 1)
    warm_specs = fixtures.write_specs(warm_scale, work / "warmup")

    def warmup() -> None:
        baselines.naive_native(first, cfg, tokens)
        baselines.floor_native(first, cfg, tokens)
        store = fixtures.cold_store(work / "stores" / "toy-warmup", shared)
        mispec_runs.run_spec(warm_specs["base"], store, work / "runs" / "toy-warmup")

    out = measure_scale(
        scale,
        naive=lambda: baselines.naive_native(files, cfg, tokens),
        floor=lambda: baselines.floor_native(files, cfg, tokens),
        warmup=warmup,
        specs=specs,
        work=work,
        shared_store=shared,
        batched=BATCHED_K,
    )
    out["training_steps_done_before_timing"] = ck["trained"]
    return out


def neox(work: Path, n_ckpts: int, n_prompts: int, repeats: int) -> dict[str, Any]:
    scale = fixtures.neox_scale(n_ckpts, n_prompts, repeats)
    root = work / "neox"
    log(f"neox: building missing step<N>/ folders under {root} (not timed)")
    folders = fixtures.neox_checkpoints(scale, root)
    specs = fixtures.write_specs(scale, work, neox_root=root)
    tokens = scale.tokens()
    swap_diff = baselines.check_hf_swap({s: folders[s] for s in scale.steps[:2]}, tokens[:2, :32])
    log(f"neox: floor's HF weight swap vs a fresh boot_transformers: max |diff| {swap_diff:.2e}")
    first = dict(list(folders.items())[:1])

    def warmup() -> None:
        baselines.naive_hf(first, tokens[:2])
        baselines.floor_hf(first, tokens[:2])

    out = measure_scale(
        scale,
        naive=lambda: baselines.naive_hf(folders, tokens),
        floor=lambda: baselines.floor_hf(folders, tokens),
        warmup=warmup,
        specs=specs,
        work=work,
        shared_store=None,
    )
    out["floor_swap_vs_fresh_boot_max_abs_diff"] = swap_diff
    return out


# ----------------------------------------------------------------------------- RSS
def rss(work: Path, small: int, large: int) -> dict[str, Any]:
    """Peak RSS of one cold mispec run (a child process) at ``small`` vs ``large`` toy
    checkpoints spread over the same training run."""
    shared = work / "toy-train"
    out: dict[str, Any] = {}
    for n in (small, large):
        base = fixtures.toy_scale(large, 1)
        every = (base.steps[-1] + base.steps[1]) // n
        scale = fixtures.Scale(
            "toy", f"rss-{n}", base.model, tuple(range(0, every * n, every)), 32, 64, 24
        )
        specs = fixtures.write_specs(scale, work / f"rss{n}")
        fixtures.toy_checkpoints(scale, specs["base"], shared)
        store = fixtures.cold_store(work / "stores" / f"rss{n}", shared)
        log(f"rss: cold mispec run of {n} checkpoints in a child process")
        child = run_child(
            [
                PYTHON,
                str(REPO / "benchmarks" / "_child_run.py"),
                str(specs["base"]),
                str(store),
                str(work / "runs" / f"rss{n}"),
                str(mispec_runs.PROFILE["path"]),
            ]
        )
        if child["rc"] != 0:
            raise RuntimeError(f"rss child failed: {child['stderr'][-3000:]}")
        last = json.loads(child["stdout"].strip().splitlines()[-1])
        counters = last["counters"]
        _require(counters["forward_passes"] == n, f"rss run: {counters}")
        out[n] = {
            "maxrss_mib": last["peak"]["VmHWM"],
            "final_rss_mib": last["peak"]["VmRSS"],
            "wall": child["wall"],
            "counters": counters,
        }
    out["growth"] = out[large]["maxrss_mib"] / out[small]["maxrss_mib"] - 1
    out["sizes"] = [small, large]
    return out


# --------------------------------------------------------------------------- report
def scale_rows(s: dict[str, Any]) -> list[list[str]]:
    w, c, n = s["wall"], s["cpu"], s["checkpoints"]
    rows = []
    for m in w:  # METHODS, then the batched contender where it ran
        ref = w["mispec cold"] if m in ("mispec warm", "mispec changed") else None
        rows.append(
            [
                m,
                fmt_s(w[m]),
                fmt_s(c[m]),
                fmt_s(w[m] / n),
                str(s["counters"].get(m, {}).get("forward_passes", n)),
                fmt_ratio(w[m] / w["floor"]),
                fmt_ratio(w[m] / w["naive"]),
                fmt_ratio(w[m] / ref) if ref else "",
                fmt_ratio(c[m] / c["mispec cold"]) if ref else fmt_ratio(c[m] / c["floor"]),
            ]
        )
    return rows


SCALE_HEADER = [
    "contender",
    "wall",
    "CPU",
    "wall / ckpt",
    "fwd passes",
    "÷ floor",
    "÷ naive",
    "÷ cold",
    "CPU ratio (÷ floor; warm/changed ÷ cold)",
]


def targets(report: dict[str, Any]) -> list[list[str]]:
    rows = []

    def add(name: str, value: str, ok: bool | None) -> None:
        rows.append([name, value, "—" if ok is None else ("PASS" if ok else "MISS")])

    for key in _scale_keys(report):
        s = report[key]
        w = s["wall"]
        tag = f"({'a' if key.startswith('toy') else 'b'}, {s.get('torch_threads', '?')} thr.)"
        r = w["mispec cold"] / w["floor"]
        limit = 1.3 if key.startswith("toy") else 1.05  # issue 20's targets
        add(f"{tag} cold ≤ {limit} × floor", fmt_ratio(r), r <= limit)
        r = w["mispec cold"] / w["naive"]
        add(f"{tag} cold ≤ 0.5 × naive", fmt_ratio(r), r <= 0.5)
        r = w["mispec warm"] / w["mispec cold"]
        add(f"{tag} warm ≤ 0.05 × cold", fmt_ratio(r), r <= 0.05)
        fp = s["counters"]["mispec changed"]["forward_passes"]
        add(f"{tag} changed-metric run: 0 forward passes", str(fp), fp == 0)
        add(f"{tag} all contenders agree (max abs diff ≤ {TOL})", _agree(s), s["agreement_ok"])
        vs_cold = s["agreement_max_abs_diff"].get("batched_vs_cold")
        if vs_cold is not None:
            d = max(vs_cold.values())
            add(f"{tag} batched checkpoints = cold (≤ {BATCHED_TOL})", f"{d:.1e}", d <= BATCHED_TOL)
    if "rss" in report:
        g = report["rss"]["growth"]
        a, b = report["rss"]["sizes"]
        add(f"peak RSS growth {a} → {b} checkpoints ≤ 10 %", f"{g * 100:+.1f} %", g <= 0.10)
    if "training" in report:
        t = report["training"]
        mine = t["minimal loop (same TL NativeModel)"]["steps_per_s"]
        r = t["mispec ensure_trained, 1 save"]["steps_per_s"] / mine
        add("training ≥ 0.9 × minimal loop (steps/s)", fmt_ratio(r), r >= 0.9)
    if "sweep" in report:
        r = report["sweep"]["ratio"]
        add("sweep in lanes ≤ 0.55 × its points one after another", fmt_ratio(r), r <= 0.55)
    if "study" in report:
        r = report["study"]["ratio"]
        add("default study end to end ≤ 0.6 × serial", fmt_ratio(r), r <= 0.6)
        add(
            "parallel and serial results identical",
            str(report["study"]["identical"]),
            report["study"]["identical"],
        )
    if "cli" in report:
        h = report["cli"]["mispec --help"]["median_s"]
        add("`mispec --help` < 0.5 s", fmt_s(h), h < 0.5)
        v = report["cli"]["mispec validate specs/induction_heads.yaml"]["median_s"]
        add("`mispec validate` latency (no target)", fmt_s(v), None)
    return rows


def _scale_keys(report: dict[str, Any]) -> list[str]:
    """``toy``, ``neox`` and their ``@N`` threads variants present in the report, in order."""
    return [k for k in report if k.split("@")[0] in ("toy", "neox") and report[k]]


def _agree(s: dict[str, Any]) -> str:
    m = max(max(v.values()) for v in s["agreement_max_abs_diff"].values())
    return f"{m:.1e}"


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    parts = [
        f"Command: `{report['command']}`  ",
        f"Date: {m['date']}; machine: {m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, "
        f"torch {m['torch']} ({m['torch_threads']} threads, --threads {report['threads_arg']}), "
        f"CUDA: {m['cuda']}; "
        f"mispec at {m['git_commit']}{' + local changes' if m['git_dirty'] else ''}  ",
        f"Load average: {m['load_before'][0]:.2f} before, {report['load_after'][0]:.2f} after "
        f"(1-min); total benchmark time {report['total_seconds']:.0f} s",
        "",
    ]
    for key in _scale_keys(report):
        s = report[key]
        if s:
            parts += [
                f"### {s['title']}, {s.get('torch_threads', '?')} torch thread(s) "
                f"(best of {s['repeats']})",
                "",
                markdown_table(SCALE_HEADER, scale_rows(s)),
                "",
            ]
    if "rss" in report:
        r = report["rss"]
        a, b = r["sizes"]
        parts += [
            "### Peak RSS of a cold mispec run (child process, toy)",
            "",
            markdown_table(
                ["checkpoints", "peak RSS (VmHWM)", "RSS at the end", "wall"],
                [
                    [
                        str(n),
                        f"{r[n]['maxrss_mib']:.0f} MiB",
                        f"{r[n]['final_rss_mib']:.0f} MiB",
                        fmt_s(r[n]["wall"]),
                    ]
                    for n in (a, b)
                ],
            ),
            "",
        ]
    if "training" in report:
        t = report["training"]
        base = t["minimal loop (same TL NativeModel)"]["steps_per_s"]
        parts += [
            f"### Toy training throughput ({report['training_steps']} steps, best of "
            f"{report['training_repeats']})",
            "",
            markdown_table(
                ["loop", "steps/s (wall)", "steps/s (CPU)", "÷ minimal (same module)"],
                [
                    [
                        k,
                        f"{v['steps_per_s']:.1f}",
                        f"{v['steps_per_cpu_s']:.1f}" if v["steps_per_cpu_s"] else "-",
                        fmt_ratio(v["steps_per_s"] / base),
                    ]
                    for k, v in t.items()
                ],
            ),
            "",
        ]
    if "seeds" in report:
        sd = report["seeds"]
        one = sd["variants"]["4 seeds one at a time"]["seed_steps_per_s"]
        parts += [
            f"### 4 seeds trained together vs one at a time ({sd['device']}, {sd['steps']} "
            f"steps each, saves every 10, best of {sd['repeats']})",
            "",
            markdown_table(
                ["training", "seed-steps/s (wall)", "all runs", "÷ one at a time"],
                [
                    [
                        k,
                        f"{v['seed_steps_per_s']:.1f}",
                        ", ".join(f"{x:.1f}" for x in v["all_seed_steps_per_s"]),
                        fmt_ratio(v["seed_steps_per_s"] / one),
                    ]
                    for k, v in sd["variants"].items()
                ],
            ),
            "",
        ]
    if "study" in report:
        st = report["study"]
        parts += [
            f"### The default study end to end, training included (best of {st['repeats']}, "
            "alternating)",
            "",
            markdown_table(
                ["training", "wall (best)", "all runs", "÷ serial"],
                [
                    [
                        k,
                        fmt_s(st["best"][k]),
                        ", ".join(f"{x:.1f}" for x in st["walls"][k]),
                        fmt_ratio(st["best"][k] / st["best"]["serial"]),
                    ]
                    for k in ("serial", "parallel")
                ],
            ),
            "",
        ]
    if "sweep" in report:
        sw = report["sweep"]
        parts += [
            f"### A sweep of {sw['points']} points ({sw['steps']} training steps each): lanes "
            f"vs one after another (best of {sw['repeats']}, alternating; load average "
            f"{sw['load_before'][0]:.2f} before, {sw['load_after'][0]:.2f} after)",
            "",
            markdown_table(
                ["points run", "wall (best)", "all runs", "÷ serial"],
                [
                    [
                        k,
                        fmt_s(sw[f"{k}_s"]),
                        ", ".join(f"{x:.1f}" for x in sw["walls"][k]),
                        fmt_ratio(sw[f"{k}_s"] / sw["serial_s"]),
                    ]
                    for k in ("serial", "lanes")
                ],
            ),
            "",
        ]
    if "cli" in report:
        parts += [
            "### CLI latency (median of subprocess runs)",
            "",
            markdown_table(
                ["command", "median", "runs"],
                [
                    [k, fmt_s(v["median_s"]), ", ".join(f"{x:.2f}" for x in v["all_s"])]
                    for k, v in report["cli"].items()
                ],
            ),
            "",
        ]
    parts += ["### Targets", "", markdown_table(["target", "measured", ""], targets(report)), ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small smoke version (a few minutes)")
    p.add_argument(
        "--only",
        default="toy,neox,toy@2,neox@2,rss,train,seeds,study,sweep,cli",
        help="comma-separated parts: toy,neox,rss,train,seeds,study,sweep,cli; toy@N / neox@N measure "
        "that scale again with N torch threads for every contender (default: all, and both "
        "scales at 2 threads too)",
    )
    p.add_argument("--work", type=Path, default=REPO / "benchmarks" / ".work")
    p.add_argument("--markdown", type=Path, help="also write the report here")
    p.add_argument(
        "--threads",
        default="1",
        help="torch intra-op threads for EVERY contender of the parts without @N (mispec gets "
        "them through a generated execution profile): a number, or 'auto': all cores on an "
        "idle machine, 1 when the 1-minute load average is above 1 (two OpenMP threads on "
        "cores shared with other busy processes stall on each other and make every ratio "
        "noise). Default 1; the toy@2 / neox@2 parts measure 2 threads beside it",
    )
    args = p.parse_args(argv)
    import torch

    threads = int(args.threads) if args.threads != "auto" else None
    if threads is None:
        threads = 1 if load_average()[0] > 1.0 else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    os.environ["MISPEC_BENCH_THREADS"] = str(threads)  # for the RSS child
    # every contender runs under the malloc thresholds mispec's local executor sets for itself
    from mispec.runtime.memory import tune_malloc

    tune_malloc()
    parts = {
        p.split("@")[0] if p.split("@")[0] not in ("toy", "neox") else p
        for p in args.only.split(",")
    }
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    mispec_runs.write_profile(work, threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore", message=".*", category=UserWarning, module="transformer_lens")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    quick = args.quick
    report: dict[str, Any] = {
        "command": " ".join(["python benchmarks/run_all.py", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "quick": quick,
        "threads_arg": args.threads,
    }
    t0 = time.perf_counter()
    log(f"work folder {work}; quick={quick}")
    for part in [p for p in args.only.split(",") if p.split("@")[0] in ("toy", "neox")]:
        name, _, at = part.partition("@")
        n = int(at) if at else threads
        if n > (os.cpu_count() or 1):
            log(f"{part}: skipped, this machine has {os.cpu_count()} cores")
            continue
        key = name if not at else f"{name}@{n}"
        torch.set_num_threads(n)
        mispec_runs.write_profile(work / f"threads{n}", n)
        if name == "toy":
            report[key] = toy(work, 20 if quick else 100, 1 if quick else 3)
        else:
            report[key] = neox(work, 3 if quick else 10, 8 if quick else 32, 1)
        report[key]["torch_threads"] = n
    torch.set_num_threads(threads)
    mispec_runs.write_profile(work, threads)
    if "rss" in parts:
        report["rss"] = rss(work, *((5, 20) if quick else (25, 100)))
    if "train" in parts:
        steps = 60 if quick else 300
        log(f"training throughput, {steps} steps")
        report["training_steps"] = steps
        report["training_repeats"] = 1 if quick else 3
        report["training"] = throughput.measure(steps, report["training_repeats"], work / "stores")
    if "seeds" in parts:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        log(f"4 seeds trained together vs one at a time ({device})")
        report["seeds"] = seeds_together.measure(
            60 if quick else 200, 1 if quick else 2, work / "stores", device
        )
    if "study" in parts:
        report["study"] = study.measure(work, 1 if quick else 2, log)
    if "sweep" in parts:
        log("a 2-point sweep: lanes vs its points one after another")
        report["sweep"] = sweep_lanes.measure(100 if quick else 1500, 1 if quick else 2, work)
    if "cli" in parts:
        log("CLI latency")
        report["cli"] = cli_latency.measure(3 if quick else 7)
    report["load_after"] = load_average()
    report["total_seconds"] = time.perf_counter() - t0
    text = render(report)
    print("\n" + text)
    (work / "latest.json").write_text(json.dumps(report, indent=1, default=str))
    (work / "latest.md").write_text(text)
    if args.markdown:
        args.markdown.write_text(text)
    for name in ("stores", "runs"):
        fresh_dir(work / name)  # the per-run stores are throwaway; checkpoints are kept
    log(f"done in {report['total_seconds']:.0f} s; report in {work / 'latest.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
