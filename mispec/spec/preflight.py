"""Checks that need more than names: the files and folders a spec points at, the sizes of
what it asks for, the prompt sets it builds, and the shape of the data flowing along metric
``inputs``. They run in ``load_spec`` (so ``validate``, ``plan`` and ``run`` all refuse a bad
spec before anything is written), each problem at ``file:line:col``.

* files and folders: a ``path:`` model's folder (per seed) holds checkpoints and its
  selector picks existing steps; a ``tokenizer:`` folder and a prompt ``file:`` exist.
  Relative paths resolve against the spec's folder and messages show the resolved path.
* sizes: a toy model to train has at most ``MAX_TRAIN_PARAMS`` parameters; a generated
  prompt set has between 1 and ``MAX_PROMPTS`` prompts.
* prompt sets: generated ones are built (cheap, numpy only); a generator that refuses its
  arguments, tokens outside the vocabulary of a model that reads them and prompts longer
  than its context are reported at the prompt set (for trained and local models; a
  pretrained model's config may need the hub, so it is checked when the run loads it).
* data flow: a reduction over ``step`` reads per-checkpoint metrics; a derived metric does
  not mix per-checkpoint and per-series inputs; metrics that need a dim of their input
  (``icl_score`` needs ``pos``; ``reduce`` needs the dims in ``over``) get it, where the
  input's dims are known before running.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mispec.errors import CheckpointError, Problem, UserError
from mispec.spec.schema import ModelSpec, Spec
from mispec.spec.yaml_source import KeyPath, SourceMap

# A toy trainer: a model above this many parameters is a typo (or the wrong tool).
MAX_TRAIN_PARAMS = 1_000_000_000
# Prompts per generated set: every cached activation holds one row per prompt.
MAX_PROMPTS = 1_000_000


def check_resources(spec: Spec, source: SourceMap, base_dir: Path) -> list[Problem]:
    """Files, folders and sizes (independent of the registry checks)."""
    problems: list[Problem] = []
    for name, model in spec.models.items():
        if model.source_kind == "path":
            _check_folder(name, model, base_dir, source, problems)
        if model.tokenizer is not None:
            folder = _resolve(model.tokenizer, base_dir)
            if not folder.is_dir():
                problems.append(
                    source.problem(
                        ("models", name, "tokenizer"), f"tokenizer folder not found: {folder}"
                    )
                )
    for name, prompt in spec.prompts.items():
        if prompt.file is not None:
            path = _resolve(prompt.file, base_dir)
            if not path.is_file():
                what = "is a folder, not a file" if path.is_dir() else "not found"
                problems.append(
                    source.problem(("prompts", name, "file"), f"prompt file {what}: {path}")
                )
            elif path.suffix.lower() not in (".txt", ".jsonl"):
                problems.append(
                    source.problem(
                        ("prompts", name, "file"),
                        f"{path}: prompt files must be .txt (one prompt per line) or .jsonl "
                        '({"text": ...} per line)',
                    )
                )
        n = prompt.args.get("n")
        if isinstance(n, int) and not isinstance(n, bool) and not 0 < n <= MAX_PROMPTS:
            problems.append(
                source.problem(
                    ("prompts", name, "args", "n"),
                    f"a prompt set needs between 1 and {MAX_PROMPTS} prompts, got n = {n}",
                )
            )
    return problems


def check_built(spec: Spec, source: SourceMap, base_dir: Path) -> list[Problem]:
    """Checks that build things: the training config, generated prompt sets against the
    models that read them, and the dims along metric inputs. Names and args must be valid
    (``check_spec`` runs this only when every other check passed)."""
    problems: list[Problem] = []
    for name, model in spec.models.items():
        if model.train is not None:
            _check_training(name, model, source, problems)
    built = _build_prompt_sets(spec, source, problems)
    _check_prompt_fit(spec, source, base_dir, built, problems)
    _check_dataflow(spec, source, problems)
    return problems


# --------------------------------------------------------------------------- models
def _resolve(path: str, base_dir: Path) -> Path:
    p = Path(path).expanduser()
    return (p if p.is_absolute() else Path(base_dir) / p).resolve()


def _check_folder(
    name: str, model: ModelSpec, base_dir: Path, source: SourceMap, problems: list[Problem]
) -> None:
    """A ``path:`` model's folder (per seed) holds checkpoints, and its selector picks steps
    that exist there."""
    from mispec.models.sources import local_layout, local_root
    from mispec.spec.checks import _check_selector

    for seed in model.seeds:
        root = local_root(model, seed, base_dir)
        try:
            local_layout(model, seed, base_dir)
        except CheckpointError as exc:
            message = str(exc)
            if str(root) not in message:
                message += f" (in {root})"
            problems.append(source.problem(("models", name, "path"), message))
            return
        except (OSError, ValueError) as exc:  # an unreadable folder or config.json
            problems.append(source.problem(("models", name, "path"), f"cannot read {root}: {exc}"))
            return
    _check_selector(name, model, base_dir, source, problems)


def _check_training(
    name: str, model: ModelSpec, source: SourceMap, problems: list[Problem]
) -> None:
    """The task's argument values, the architecture against the task, the model's size."""
    from mispec.models.runs import native_config

    train = model.train
    assert train is not None
    path: KeyPath = ("models", name, "train")
    try:
        cfg = native_config(train, model.seeds[0])
    except UserError as exc:
        where = "arch" if str(exc).startswith("arch.") else "task_args"
        problems.append(source.problem((*path, where), str(exc)))
        return
    d, layers = cfg["d_model"], cfg["n_layers"]
    attn = 4 * cfg["n_heads"] * cfg["d_head"] * d
    mlp = 0 if cfg["attn_only"] else 2 * d * cfg.get("d_mlp", 4 * d)
    params = 2 * cfg["d_vocab"] * d + cfg["n_ctx"] * d + layers * (attn + mlp)
    if params > MAX_TRAIN_PARAMS:
        problems.append(
            source.problem(
                (*path, "arch"),
                f"this model would have about {params:.1e} parameters (~{params * 16 / 2**30:.0f}"
                f" GiB to train with Adam); mispec trains toy models of at most "
                f"{MAX_TRAIN_PARAMS:.0e}: check d_model, d_head, n_heads, n_layers and d_mlp",
            )
        )


# --------------------------------------------------------------------------- prompts
def _build_prompt_sets(spec: Spec, source: SourceMap, problems: list[Problem]) -> dict[str, Any]:
    """Generated prompt sets that metrics read, built as a run would build them."""
    from mispec.prompts.core import GENERATORS, load_builtin_generators

    load_builtin_generators()
    used = {m.prompts for m in spec.metrics.values() if m.prompts is not None}
    built: dict[str, Any] = {}
    for name in sorted(used):
        prompt = spec.prompts[name]
        if prompt.generator is None:
            continue
        path: KeyPath = ("prompts", name, "args")
        try:
            prompts = GENERATORS.get(prompt.generator)(seed=prompt.seed, **prompt.args)
        except (UserError, ValueError, TypeError, MemoryError, OverflowError) as exc:
            problems.append(
                source.problem(
                    path if prompt.args else ("prompts", name, "generator"),
                    f"generator '{prompt.generator}' cannot build this prompt set: "
                    f"{type(exc).__name__}: {exc}"
                    if isinstance(exc, MemoryError | OverflowError)
                    else f"generator '{prompt.generator}' cannot build this prompt set: {exc}",
                )
            )
            continue
        if prompts.n == 0 or prompts.seq_len == 0:
            problems.append(source.problem(path, "this prompt set is empty"))
            continue
        built[name] = prompts
    return built


def _check_prompt_fit(
    spec: Spec, source: SourceMap, base_dir: Path, built: dict[str, Any], problems: list[Problem]
) -> None:
    """Every model that reads a generated prompt set has its tokens in its vocabulary and
    its length in its context."""
    from mispec.models.sources import model_info

    infos: dict[str, Any] = {}
    seen: set[tuple[str, str]] = set()
    for m in spec.metrics.values():
        if m.prompts not in built:
            continue
        prompts = built[m.prompts]
        for model_name in m.models or list(spec.models):
            if (m.prompts, model_name) in seen:
                continue
            seen.add((m.prompts, model_name))
            if model_name not in infos:
                model = spec.models[model_name]
                infos[model_name] = None  # pretrained: known at run time (no hub calls here)
                if model.source_kind != "pretrained":
                    try:
                        infos[model_name] = model_info(model_name, model, base_dir)
                    except Exception:  # an unreadable config: the run reports it
                        infos[model_name] = None
            info = infos[model_name]
            if info is None:
                continue
            path: KeyPath = ("prompts", m.prompts, "args")
            top = prompts.max_token()
            if top >= info.d_vocab:
                problems.append(
                    source.problem(
                        path,
                        f"token id {top} is outside the vocabulary of model '{model_name}' "
                        f"(d_vocab = {info.d_vocab}); lower the generator's vocab or use a "
                        "model with a bigger vocabulary",
                    )
                )
            if prompts.seq_len > info.n_ctx:
                problems.append(
                    source.problem(
                        path,
                        f"prompts are {prompts.seq_len} tokens long, longer than the context "
                        f"of model '{model_name}' (n_ctx = {info.n_ctx}); shorten them",
                    )
                )


# --------------------------------------------------------------------------- data flow
def _dims_rule(mdef: Any, args: dict[str, Any], inputs: dict[str, Any]) -> Any:
    """Output dims of a built-in metric that declares none (None: unknown before running)."""
    builtin = getattr(mdef.fn, "__module__", "").startswith("mispec.metrics.builtin")
    if not builtin:
        return None
    name = mdef.name
    if name == "icl_score":
        d = inputs.get("per_token_loss")
        return None if d is None else tuple(x for x in d if x != "pos")
    if name == "reduce":
        d = inputs.get("x")
        over = args.get("over") or []
        return None if d is None else tuple(x for x in d if x not in over)
    if name in ("transition_step", "transition_size"):
        return inputs.get("series")  # one step (size) per cell of the input
    if name == "pca_over_steps":
        return ("step", "pc")
    if name == "activation_patching":
        return ("layer", "head" if args.get("per", "head") == "head" else "pos")
    return None


def _check_dataflow(spec: Spec, source: SourceMap, problems: list[Problem]) -> None:
    from mispec.metrics.core import METRICS
    from mispec.spec.checks import find_metric_cycle

    if find_metric_cycle(spec):
        return
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(spec.metrics)
    g.add_edges_from((ref, n) for n, m in spec.metrics.items() for ref in m.inputs.values())
    granularity: dict[str, str] = {}
    dims: dict[str, Any] = {}
    for name in nx.lexicographical_topological_sort(g):
        m = spec.metrics[name]
        mdef = METRICS.get_or_none(m.fn)
        if mdef is None or not hasattr(mdef, "kind"):
            granularity[name], dims[name] = "group", None
            continue
        path: KeyPath = ("metrics", name)
        kinds = {p: granularity[ref] for p, ref in m.inputs.items()}
        if mdef.kind == "reduction":
            granularity[name] = "series"
            for p, ref in m.inputs.items():
                if kinds[p] == "series":
                    problems.append(
                        source.problem(
                            (*path, "inputs", p),
                            f"'{m.fn}' reduces over the step axis, but '{ref}' has none (it is "
                            "itself one result per model and seed); give it a per-checkpoint "
                            "metric",
                        )
                    )
        elif mdef.kind == "derived":
            if len(set(kinds.values())) > 1:
                problems.append(
                    source.problem(
                        (*path, "inputs"),
                        "mixes per-checkpoint inputs ("
                        + ", ".join(sorted(m.inputs[p] for p, k in kinds.items() if k == "group"))
                        + ") with per-series ones ("
                        + ", ".join(sorted(m.inputs[p] for p, k in kinds.items() if k != "group"))
                        + "); a derived metric reads one kind",
                    )
                )
            granularity[name] = next(iter(kinds.values()), "group")
        else:
            granularity[name] = "group"
        in_dims = {p: dims[ref] for p, ref in m.inputs.items()}
        _check_input_dims(spec, source, name, mdef, in_dims, problems)
        declared = getattr(mdef, "dims", None)
        dims[name] = tuple(declared) if declared is not None else _dims_rule(mdef, m.args, in_dims)


def _check_input_dims(
    spec: Spec,
    source: SourceMap,
    name: str,
    mdef: Any,
    in_dims: dict[str, Any],
    problems: list[Problem],
) -> None:
    """Built-in metrics whose input must carry certain dims."""
    if not getattr(mdef.fn, "__module__", "").startswith("mispec.metrics.builtin"):
        return
    m = spec.metrics[name]

    def shown(d: tuple[str, ...]) -> str:
        return "(" + ", ".join(d) + ")" if d else "no dims (one number per checkpoint)"

    if mdef.name == "icl_score":
        d = in_dims.get("per_token_loss")
        if d is not None and "pos" not in d:
            ref = m.inputs["per_token_loss"]
            problems.append(
                source.problem(
                    ("metrics", name, "inputs", "per_token_loss"),
                    f"icl_score needs per-token values (a 'pos' dim, e.g. from per_token_loss), "
                    f"but '{ref}' ({spec.metrics[ref].fn}) has dims {shown(d)}",
                )
            )
    elif mdef.name == "reduce":
        d = in_dims.get("x")
        over = m.args.get("over") or []
        missing = [x for x in over if d is not None and x not in d]
        if missing:
            ref = m.inputs["x"]
            problems.append(
                source.problem(
                    ("metrics", name, "args", "over"),
                    f"'{ref}' has no dims {missing} to reduce over (its dims: {shown(d)})",
                )
            )
