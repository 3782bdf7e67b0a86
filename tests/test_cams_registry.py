"""The method registry: one declaration per method, read by the API, the command lines and the README."""
import re
import subprocess
import sys
import warnings
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
        registry.register("gradcam", title="x", family="gradient", cost="1", paper="p 2020", formula="f")(type("Other", (), {}))
    with pytest.raises(ValueError, match="family must be one of"):
        registry.register("new", title="x", family="magic", cost="1", paper="p 2020", formula="f")


def test_cli_methods_lists_the_registry(capsys):
    from cams.cli import main

    assert main(["methods"]) == 0
    assert capsys.readouterr().out == registry.markdown_table()


def test_readme_adding_a_method_example_runs():
    text = README.read_text(encoding="utf-8")
    section = text.split("### Adding a method", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    check = code + (
        "\nassert 'my-xgradcam' in cams.registry.names()"
        "\nx = np.random.default_rng(0).random((3, 32, 32, 3)).astype('float32')"
        "\nnp.testing.assert_allclose(cams.make_explainer('my-xgradcam', model)(x, [0, 1, 4]), cams.XGradCAM(model)(x, [0, 1, 4]), atol=1e-6)"
    )
    r = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "(2, 32, 32) float32" in r.stdout


def test_old_module_paths_still_import_with_a_deprecation_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import cams.gradient_cams as old  # noqa: F401

        from cams.methods import gradient
    assert old is gradient and old.GradCAM is cams.GradCAM
    assert any(issubclass(w.category, DeprecationWarning) and "cams.methods.gradient" in str(w.message) for w in caught)
    from cams.files import write_json  # noqa: F401  (a 0.1 path of a core module, kept without warning)
    assert set(cams.METHOD_TITLES) == set(registry.names())
