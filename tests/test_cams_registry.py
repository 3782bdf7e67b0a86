"""The method registry: one declaration per method, read by the API, the command lines and the README."""
import importlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cams
from cams.methods import registry
from cams_models import conv_gap_dense, images

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_method_is_declared_once_with_its_paper_and_cost():
    table = registry.methods()
    assert len(table) == len(set(m.cls for m in table.values()))
    for name, m in table.items():
        assert name == name.lower() and m.title and m.cost and m.formula
        assert m.family in registry.FAMILIES
        assert re.search(r"(19|20)\d\d", m.paper), f"{name}: the paper needs its year"
        assert m.cls.__doc__ and getattr(cams, m.cls.__name__) is m.cls
        assert m.cls.method is m


def test_readme_methods_table_is_the_registry():
    text = README.read_text(encoding="utf-8")
    found = text.split("<!-- methods-table:start -->\n", 1)[1].split("<!-- methods-table:end -->", 1)[0]
    assert found == registry.markdown_table(), "README's methods table differs: paste the output of `cams methods`"


def test_make_explainer_builds_by_name_and_drops_shared_options():
    model = conv_gap_dense()
    ex = cams.make_explainer("RISE", model, layer="feat", n_masks=8, seed=1, batch_size=4)  # layer: not RISE's
    assert isinstance(ex, cams.RISE) and ex.n_masks == 8
    np.testing.assert_allclose(cams.make_explainer("gradcam", model, layer="feat")(images(2), [1, 2]),
                               cams.GradCAM(model, layer="feat")(images(2), [1, 2]), atol=1e-6)
    with pytest.raises(ValueError, match="method 'gradcam' has no option 'n_masks'"):
        cams.make_explainer("gradcam", model, n_masks=3)
    with pytest.raises(ValueError, match="unknown method 'lime'; choose from gradcam, "):
        cams.make_explainer("lime", model)


@pytest.mark.parametrize("text,message", [("", "no method given"), ("gradcam,nope", "unknown method 'nope'")])
def test_parse_methods_errors(text, message):
    with pytest.raises(ValueError, match=message):
        registry.parse_methods(text)


def test_register_refuses_a_taken_name_and_an_unknown_family():
    with pytest.raises(ValueError, match="already taken by GradCAM"):
        registry.register("gradcam", title="x", family="gradient", cost="1", paper="p 2020", formula="f", gradient=True)(type("Other", (), {}))
    with pytest.raises(ValueError, match="family must be one of"):
        registry.register("new", title="x", family="magic", cost="1", paper="p 2020", formula="f", gradient=False)


def test_cli_methods_lists_the_registry(capsys):
    from cams.cli import main

    assert main(["methods"]) == 0
    assert capsys.readouterr().out == registry.markdown_table()


def test_readme_adding_a_method_example_runs():
    text = README.read_text(encoding="utf-8")
    section = text.split("### Adding a method", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    check = code + (
        "\nassert 'my-xgradcam' in cams.methods.registry.names()"
        "\nx = np.random.default_rng(0).random((3, 32, 32, 3)).astype('float32')"
        "\nnp.testing.assert_allclose(cams.make_explainer('my-xgradcam', model)(x, [0, 1, 4]), cams.XGradCAM(model)(x, [0, 1, 4]), atol=1e-6)"
    )
    r = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "(2, 32, 32) float32" in r.stdout


def test_the_front_door_lists_every_registered_explainer_and_nothing_old():
    assert {m.cls.__name__ for m in registry.methods().values()} == set(cams.EXPLAINERS)
    assert set(cams.__all__) >= set(cams.EXPLAINERS) | set(cams.FUNCTIONS) | set(cams.SUBPACKAGES)
    for old in ("METHODS", "METHOD_NAMES", "METHOD_TITLES", "files", "model_graph", "registry"):
        with pytest.raises(AttributeError, match=f"no attribute '{old}'"):
            getattr(cams, old)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("cams.gradient_cams")  # a path of version 0.1, removed


def test_import_cams_loads_no_tensorflow():
    code = "import sys, cams; cams.methods.registry; assert 'tensorflow' not in sys.modules, 'TensorFlow loaded'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_table_order_is_the_declared_module_order():
    """METHOD_MODULES fixes the order; a module that declares methods but is not listed fails here."""
    methods_dir = Path(registry.__file__).parent
    declaring = {Path(p.relative_to(methods_dir).parts[0]).stem
                 for p in methods_dir.rglob("*.py") if "register(" in p.read_text(encoding="utf-8") and p.stem != "registry"}
    assert declaring == set(registry.METHOD_MODULES), "add the module to registry.METHOD_MODULES"
    ranks = [registry.METHOD_MODULES.index(m.cls.__module__.split(".")[2]) for m in registry.methods().values()]
    assert ranks == sorted(ranks)
    assert registry.names()[:2] == ["gradcam", "gradcam++"] and registry.names()[-2:] == ["lcam", "featurecam"]


def test_capabilities_describe_what_each_method_needs():
    table = registry.methods()
    assert [n for n, m in table.items() if m.trained_file] == ["lcam"]
    assert [n for n, m in table.items() if m.gap_dense_head] == ["cam"]
    assert [n for n, m in table.items() if m.model_agnostic] == ["rise"]
    assert not table["cam"].gradient and not table["eigencam"].gradient and table["saliency"].gradient
    assert [n for n, m in table.items() if m.second_network] == ["featurecam"]
    assert "lcam" not in cams.export.exportable_methods() and "gradcam" in cams.export.exportable_methods()
    assert registry.needs_text(table["rise"]) == "outputs only"


def test_a_method_that_needs_an_argument_says_so_in_one_line():
    model = conv_gap_dense()
    with pytest.raises(ValueError) as err:
        cams.make_explainer("lcam", model)
    assert str(err.value) == "lcam needs path=: the file written by `cams lcam-train`"
    with pytest.raises(ValueError, match="lcam needs path="):
        registry.build_explainers(model, "gradcam,lcam")


def test_build_explainers_reads_a_methods_value_and_drops_repeats():
    model = conv_gap_dense()
    built = registry.build_explainers(model, "gradcam, eigencam,gradcam", layer=None)
    assert list(built) == ["gradcam", "eigencam"]
    assert isinstance(built["gradcam"], cams.GradCAM) and isinstance(built["eigencam"], cams.EigenCAM)


def test_every_registered_class_satisfies_the_explainer_contract():
    from cams.core.contract import ExplainerContract, missing_members

    for name, m in registry.methods().items():
        assert missing_members(m.cls) == [], f"{name} lacks {missing_members(m.cls)}"
    explainer = cams.GradCAM(conv_gap_dense())
    assert isinstance(explainer, ExplainerContract)
    assert missing_members(type("NotAnExplainer", (), {"__call__": lambda self, images, targets=None: None})) == [
        "explain_tensor", "forward_passes", "layer", "exportable"]
