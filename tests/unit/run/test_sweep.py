"""The sweep's parent run name (runner/run/sweep.py): a preset by its name, an ad-hoc sweep by what it sweeps."""

from __future__ import annotations

from runner.run.sweep import NAME_LIMIT, sweep_name


def test_an_ad_hoc_sweep_is_named_by_the_keys_and_values_it_sweeps() -> None:
    overrides = ["act=relu,prelu", "model.width=4", "init=kaiming,xavier_he", "+seed=range(0,3)"]
    assert sweep_name(None, overrides) == "sweep act=relu,prelu × init=kaiming,xavier_he × seed=range(0,3)"
    assert sweep_name(None, ["model.width=4"]) == "sweep"  # -m without a sweep: one job


def test_a_preset_is_named_by_the_preset_whatever_the_command_adds() -> None:
    assert sweep_name("init_depth_smoke", ["optim.lr=0.002,1e6"]) == "init_depth_smoke"


def test_a_long_sweep_name_is_cut_to_what_mlflow_stores() -> None:
    name = sweep_name(None, [f"optim.lr={','.join(str(i / 1000) for i in range(1, 200))}"])
    assert len(name) == NAME_LIMIT and name.endswith("…") and name.startswith("sweep optim.lr=0.001,0.002")
