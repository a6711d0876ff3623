"""The metric DAG (``mispec.metrics.dag``): its order is networkx's lexicographical
topological order, cycles are found, granularity and dims follow each metric's declared
metadata, and problems carry the spec key path to fix. A plugin metric that declares what it
needs from its input is checked exactly like a built-in one."""

from __future__ import annotations

import pickle

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mispec
from mispec.errors import PlanError, SpecError
from mispec.metrics.core import METRICS, InputDims, get_metric, load_builtin_metrics, metric
from mispec.metrics.dag import MetricProblem, build_metric_graph, find_cycle
from mispec.spec.metrics import MetricSpec
from tests.conftest import TOY_SPEC


def metrics(**entries: dict) -> dict[str, MetricSpec]:
    return {name: MetricSpec(**entry) for name, entry in entries.items()}


def graph(ms: dict[str, MetricSpec]):
    return build_metric_graph(ms, {name: get_metric(m.fn) for name, m in ms.items()})


TOY = metrics(
    loss={"fn": "loss", "prompts": "rep"},
    per_token_loss={"fn": "per_token_loss", "prompts": "rep"},
    induction={"fn": "induction_score", "prompts": "rep"},
    icl={"fn": "icl_score", "inputs": {"per_token_loss": "per_token_loss"}},
    transition={"fn": "transition_step", "inputs": {"series": "induction"}},
    pca={"fn": "pca_over_steps", "inputs": {"series": "per_token_loss"}},
    top={"fn": "reduce", "inputs": {"x": "induction"}, "args": {"over": ["layer"]}},
    latest={"fn": "reduce", "inputs": {"x": "transition"}, "args": {"over": ["head"]}},
    patch={"fn": "activation_patching", "prompts": "rep", "args": {"per": "position"}},
)


def test_order_is_networkx_lexicographical_topological_order():
    g = nx.DiGraph()
    g.add_nodes_from(TOY)
    g.add_edges_from((ref, n) for n, m in TOY.items() for ref in m.inputs.values())
    assert graph(TOY).order == tuple(nx.lexicographical_topological_sort(g))
    assert graph(TOY).order[:3] == ("induction", "loss", "patch")


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_order_matches_networkx_on_random_dags(data):
    n = data.draw(st.integers(1, 8))
    names = [f"m{i}" for i in data.draw(st.permutations(range(n)))]
    ms = {}
    for i, name in enumerate(names):
        ups = data.draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else []
        ms[name] = MetricSpec(fn="x", inputs={f"p{j}": u for j, u in enumerate(ups)})
    g = nx.DiGraph()
    g.add_nodes_from(ms)
    g.add_edges_from((ref, name) for name, m in ms.items() for ref in m.inputs.values())
    out = build_metric_graph(ms, {})  # unknown functions: per-checkpoint, unknown dims
    assert out.order == tuple(nx.lexicographical_topological_sort(g))
    assert set(out.granularity.values()) == {"group"} and set(out.dims.values()) == {None}


def test_cycle_found_and_refused():
    ms = metrics(
        a={"fn": "reduce", "inputs": {"x": "c"}, "args": {"over": []}},
        b={"fn": "reduce", "inputs": {"x": "a"}, "args": {"over": []}},
        c={"fn": "reduce", "inputs": {"x": "b"}, "args": {"over": []}},
        d={"fn": "loss", "prompts": "rep"},
    )
    assert find_cycle(ms) == ["a", "c", "b", "a"]
    assert find_cycle(TOY) is None
    assert find_cycle(metrics(a={"fn": "reduce", "inputs": {"x": "missing"}})) is None
    with pytest.raises(PlanError, match="metric inputs form a cycle: a -> c -> b -> a"):
        graph(ms)


def test_granularity():
    out = graph(TOY)
    assert out.granularity == {
        "loss": "group",
        "per_token_loss": "group",
        "induction": "group",
        "icl": "group",
        "top": "group",
        "patch": "group",
        "transition": "series",
        "pca": "series",
        "latest": "series",  # derived from a reduction
    }
    assert out.problems == ()


def test_dims_propagate_through_the_declared_rules():
    assert graph(TOY).dims == {
        "loss": (),
        "per_token_loss": ("pos",),
        "induction": ("layer", "head"),
        "icl": (),  # per_token_loss without pos
        "transition": ("layer", "head"),  # one step per cell of its series
        "pca": ("step", "pc"),
        "top": ("head",),  # induction without `over`
        "latest": ("layer",),
        "patch": ("layer", "pos"),  # per: position
    }
    ms = metrics(
        patch={"fn": "activation_patching", "prompts": "rep"},
        icl={"fn": "icl_score", "inputs": {"per_token_loss": "unknown"}},
        unknown={"fn": "no_such_metric"},
    )
    out = build_metric_graph(ms, {n: get_metric(ms[n].fn) for n in ("patch", "icl")})
    assert out.dims == {"patch": ("layer", "head"), "icl": None, "unknown": None}
    assert out.granularity["unknown"] == "group" and out.problems == ()


def test_problems_carry_key_paths():
    ms = metrics(
        induction={"fn": "induction_score", "prompts": "rep"},
        per_token_loss={"fn": "per_token_loss", "prompts": "rep"},
        icl={"fn": "icl_score", "inputs": {"per_token_loss": "induction"}},
        top={"fn": "reduce", "inputs": {"x": "induction"}, "args": {"over": ["neuron"]}},
        transition={"fn": "transition_step", "inputs": {"series": "induction"}},
        again={"fn": "transition_step", "inputs": {"series": "transition"}},
        mixed={"fn": "icl_score", "inputs": {"per_token_loss": "transition"}},
    )
    assert set(graph(ms).problems) == {
        MetricProblem(
            ("metrics", "icl", "inputs", "per_token_loss"),
            "icl_score needs per-token values (a 'pos' dim, e.g. from per_token_loss), but "
            "'induction' (induction_score) has dims (layer, head)",
        ),
        MetricProblem(
            ("metrics", "top", "args", "over"),
            "'induction' has no dims ['neuron'] to reduce over (its dims: (layer, head))",
        ),
        MetricProblem(
            ("metrics", "again", "inputs", "series"),
            "'transition_step' reduces over the step axis, but 'transition' has none (it is "
            "itself one result per model and seed); give it a per-checkpoint metric",
        ),
        MetricProblem(
            ("metrics", "mixed", "inputs", "per_token_loss"),
            "icl_score needs per-token values (a 'pos' dim, e.g. from per_token_loss), but "
            "'transition' (transition_step) has dims (layer, head)",
        ),
    }


def test_a_derived_metric_mixing_granularities():
    @metric(dims=None, inputs=("a", "b"), register=False)
    def both(a, b):
        return a + b

    ms = metrics(
        loss={"fn": "loss", "prompts": "rep"},
        induction={"fn": "induction_score", "prompts": "rep"},
        transition={"fn": "transition_step", "inputs": {"series": "induction"}},
        both={"fn": "both", "inputs": {"a": "loss", "b": "transition"}},
    )
    defs = {n: get_metric(m.fn) for n, m in ms.items() if n != "both"}
    out = build_metric_graph(ms, {**defs, "both": both.__mispec__})
    assert out.problems == (
        MetricProblem(
            ("metrics", "both", "inputs"),
            "mixes per-checkpoint inputs (loss) with per-series ones (transition); "
            "a derived metric reads one kind",
        ),
    )


def test_a_dims_rule_that_fails_is_a_problem_not_a_crash():
    def first_k(x, k):
        return x[:k]

    @metric(dims=first_k, inputs=("x",), register=False)
    def head_of(x, k: int = 1):
        return x

    ms = metrics(
        induction={"fn": "induction_score", "prompts": "rep"},
        h={"fn": "h", "inputs": {"x": "induction"}, "args": {"k": "two"}},
    )
    out = build_metric_graph(
        ms, {"induction": get_metric("induction_score"), "h": head_of.__mispec__}
    )
    assert out.dims["h"] is None
    assert out.problems[0].path == ("metrics", "h", "args")
    assert "cannot work out the dims of 'h' with these args: TypeError" in out.problems[0].message


def other(y):
    return y


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dims": other, "inputs": ("x",)}, "parameter 'y' is not an arg or input"),
        ({"dims": lambda x: x, "inputs": ("x",)}, "must be a named function, not a lambda"),
        (
            {"dims": None, "inputs": ("x",), "input_dims": {"y": InputDims(("pos",))}},
            "not an input",
        ),
        (
            {"dims": None, "inputs": ("x",), "input_dims": {"x": InputDims()}},
            "either dims or an arg",
        ),
        (
            {"dims": None, "inputs": ("x",), "input_dims": {"x": InputDims(("pos",), arg="k")}},
            "either dims or an arg",
        ),
        ({"dims": None, "inputs": ("x",), "input_dims": {"x": InputDims(arg="x")}}, "not an arg"),
        (
            {"dims": None, "inputs": ("x",), "input_dims": {"x": InputDims(("tokens",))}},
            "vocabulary",
        ),
        ({"dims": None, "inputs": ("x",), "input_dims": {"x": ("pos",)}}, "must be an InputDims"),
    ],
)
def test_declarations_are_checked_at_decoration(kwargs, message):
    def fn(x, k: int = 1):
        return x

    with pytest.raises(TypeError, match=message):
        metric(register=False, **kwargs)(fn)


def test_every_builtin_definition_pickles_as_plans_do():
    """The plan (with its metric definitions, dims functions included) is pickled for
    distributed executors."""
    load_builtin_metrics()
    for name in METRICS.names():
        mdef = METRICS.get(name)
        assert pickle.loads(pickle.dumps(mdef)) == mdef, name


# --------------------------------------------------------------------------- plugins
PLUGIN = """\
from mispec.metrics.core import InputDims, metric


def without_pos(per_token_loss):
    return tuple(d for d in per_token_loss if d != "pos")


@metric(
    dims=without_pos,
    inputs=("per_token_loss",),
    input_dims={
        "per_token_loss": InputDims(
            ("pos",), why="per-token values (a 'pos' dim, e.g. from per_token_loss)"
        )
    },
    register=False,
)
def my_icl(per_token_loss, early: int, late: int):
    return per_token_loss.sel(pos=late) - per_token_loss.sel(pos=early)


def same(x):
    return x


@metric(dims=same, inputs=("x",), input_dims={"x": InputDims(("pos",))}, register=False)
def smooth(x, width: int = 3):
    return x.rolling(pos=width, min_periods=1).mean()
"""


def _problems(spec) -> list:
    with pytest.raises(SpecError) as info:
        mispec.load_spec(spec)
    return info.value.problems


def test_a_plugin_metric_gets_the_same_located_error_as_a_builtin(write_spec, tmp_path):
    (tmp_path / "dims_plugin.py").write_text(PLUGIN)
    wiring = "inputs: {per_token_loss: per_token_loss}"
    builtin = _problems(
        write_spec(TOY_SPEC.replace(wiring, "inputs: {per_token_loss: induction}"), "b.yaml")
    )
    plugin = _problems(
        write_spec(
            TOY_SPEC.replace(wiring, "inputs: {per_token_loss: induction}").replace(
                "fn: icl_score", 'fn: "dims_plugin:my_icl"'
            ),
            "p.yaml",
        )
    )
    assert len(builtin) == len(plugin) == 1
    (b,), (p,) = builtin, plugin
    assert p.path == b.path == ("metrics", "icl", "inputs", "per_token_loss")
    assert p.line == b.line == 22
    assert p.col == b.col + len('"dims_plugin:my_icl"') - len("icl_score")
    assert p.message == b.message.replace("icl_score needs", "dims_plugin:my_icl needs")
    assert "'induction' (induction_score) has dims (layer, head)" in p.message


def test_a_plugin_metrics_dims_flow_into_the_checks_downstream(write_spec, tmp_path):
    (tmp_path / "dims_plugin.py").write_text(PLUGIN)
    smooth, top = _problems(
        write_spec(
            TOY_SPEC
            + '  smooth: {fn: "dims_plugin:smooth", inputs: {x: induction}}\n'
            + "  top: {fn: reduce, inputs: {x: smooth}, args: {over: [pos]}}\n"
        )
    )
    assert smooth.path == ("metrics", "smooth", "inputs", "x")
    assert smooth.message == (
        "dims_plugin:smooth needs the dims (pos) in its input 'x', but 'induction' "
        "(induction_score) has dims (layer, head)"
    )
    assert top.path == ("metrics", "top", "args", "over")  # smooth keeps its input's dims
    assert top.message == "'smooth' has no dims ['pos'] to reduce over (its dims: (layer, head))"
    (p,) = _problems(
        write_spec(
            TOY_SPEC
            + '  smooth: {fn: "dims_plugin:smooth", inputs: {x: per_token_loss}}\n'
            + "  top: {fn: reduce, inputs: {x: smooth}, args: {over: [head]}}\n",
            "downstream.yaml",
        )
    )
    assert (p.path, p.line) == (("metrics", "top", "args", "over"), 25)
    assert p.message == "'smooth' has no dims ['head'] to reduce over (its dims: (pos))"
