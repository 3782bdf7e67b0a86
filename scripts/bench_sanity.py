"""Cost of the cascading randomisation test against its floor, on the Bengali digit CNN.

The floor is what the test must do: each method's maps for the original model and after each of the B
steps ((B + 1) explanations, compiled graphs already traced), plus the B re-initialisations; the four
similarity measures (numpy / scikit-image on the CPU) are timed apart.
`cams.sanity` re-initialises one private copy in place, so the explainers built on it keep their
compiled graphs; the alternative, a fresh `clone_model` copy per step with explainers built on it,
re-traces every explainer at every step, measured here as well.

    python scripts/bench_sanity.py                  # 32 digits, 4 methods, 3 repeats (median)
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def timed(fn, repeats: int) -> float:
    """Median seconds of `fn()` over `repeats` runs."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> int:
    import numpy as np

    from bengali_xai.model import build_cnn
    from cams.sanity import Randomiser, SanityCheck
    from cams.metrics.similarity import Comparison
    from cams.sanity.checks import build_explainers, explain_all

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--methods", default="gradcam,saliency,guidedbackprop,integratedgradients")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    methods = a.methods.split(",")
    options = {"integratedgradients": {"steps": 16}} if "integratedgradients" in methods else {}
    model = build_cnn()
    x = np.random.default_rng(0).random((a.images, 28, 28, 1)).astype("float32")
    targets = np.zeros(a.images, np.int32)

    check = SanityCheck(model, methods, options=options)
    explain_all(check.explainers, x, targets)  # trace once
    steps = check.n_steps
    explain = timed(lambda: explain_all(check.explainers, x, targets), a.repeats)
    r = Randomiser(model)
    reinit = timed(lambda: list(r.cascading()), a.repeats)
    maps = explain_all(check.explainers, x, targets)

    def measure_all():
        compare = {k: Comparison(m) for k, m in maps.items()}
        return [compare[k](m[::-1]) for _ in range(steps) for k, m in maps.items()]

    measures = timed(measure_all, a.repeats)
    floor = (steps + 1) * explain + reinit
    run = timed(lambda: list(check.run(x, targets)), a.repeats)

    def clone_per_step():
        for _ in range(steps):
            fresh = Randomiser(model).model
            explain_all(build_explainers(fresh, methods, options=options), x, targets)

    clone = timed(clone_per_step, 1) + explain
    print(f"digit CNN, {a.images} images, {len(methods)} methods ({a.methods}), {steps} steps")
    print(f"one explanation of every method: {explain:.3f} s; {steps} re-initialisations: {reinit:.3f} s")
    print(f"floor (B + 1 explanations + re-initialisation): {floor:.3f} s")
    print(f"the four similarity measures of every (method, step): {measures:.3f} s")
    print(f"cams.sanity cascading run (in place):            {run:.3f} s = {run / floor:.2f}x the floor, "
          f"{run / (floor + measures):.2f}x floor + measures")
    print(f"a clone and new explainers per step (re-traced): {clone:.3f} s = {clone / floor:.2f}x the floor")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
