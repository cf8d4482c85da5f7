"""Experiment config: YAML round trip, unknown keys, type errors, dotted overrides, model resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdlab.config import (
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    resolve_model_config,
    save_config,
    to_dict,
)

CONFIGS = Path(__file__).resolve().parents[1] / "kdlab" / "configs"


def test_round_trip(tmp_path: Path) -> None:
    cfg = config_from_dict({
        "name": "t", "data": {"corpus": "/c", "tokenizer": "bpe", "vocab_size": 300},
        "model": {"kind": "ar", "preset": "mini-teacher", "config": {"dropout": 0.2}},
        "train": {"epochs": 3, "lr": 2, "betas": [0.9, 0.99]},
        "kd": {"enabled": True, "teacher": "runs/t/avg-5.pt", "beta_s": 1.0},
    })
    assert cfg.train.lr == 2.0 and isinstance(cfg.train.lr, float)  # int → float
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert again == cfg
    assert to_dict(again)["kd"]["teacher"] == "runs/t/avg-5.pt"
    assert type(again.kd).__name__ == "KDConfig"


def test_defaults_and_manifest_paths() -> None:
    cfg = ExperimentConfig()
    cfg.data.corpus = "/corpus"
    assert cfg.data.manifest("train") == "/corpus/train.jsonl"
    cfg.data.dev = "/x/dev.jsonl"
    assert cfg.data.manifest("dev") == "/x/dev.jsonl"
    with pytest.raises(ConfigError, match="data.train"):
        ExperimentConfig().data.manifest("train")


@pytest.mark.parametrize("data, match", [
    ({"train": {"epochz": 3}}, "unknown config key 'train.epochz'"),
    ({"trian": {}}, "unknown config key 'trian'"),
    ({"model": {"config": {"d_modle": 4}}}, "d_modle"),
    ({"kd": {"gamma": 1}}, "gamma"),
    ({"train": {"epochs": "three"}}, "train.epochs: expected int"),
    ({"train": {"epochs": True}}, "train.epochs"),
    ({"train": {"optimizer": "sgd"}}, "train.optimizer"),
    ({"train": {"precision": "fp8"}}, "train.precision"),
    ({"model": {"kind": "rnnt"}}, "model.kind"),
    ({"train": {"epochs": 0}}, "train.epochs: must be > 0"),
    ({"train": {"keep_last": 2, "average_last": 5}}, "average_last"),
    ({"data": "nope"}, "data: expected a mapping"),
    ({"train": {"lr": float("nan")}}, "train.lr: must be a finite number"),
    ({"train": {"grad_clip": float("nan")}}, "train.grad_clip: must be a finite number"),
    ({"train": {"grad_clip": float("inf")}}, "train.grad_clip: must be a finite number"),
    ({"train": {"weight_decay": "-inf"}}, "train.weight_decay: must be a finite number"),
    ({"kd": {"gamma_dec": float("nan")}}, "kd.gamma_dec: must be a finite number"),
    ({"model": {"config": {"dropout": float("nan")}}}, "model.config.dropout: must be a finite number"),
])
def test_errors_name_the_key(data: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        cfg = config_from_dict(data)
        resolve_model_config(cfg.model)


def test_load_error_names_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  max_frame: 10\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown config key 'train\.max_frame'"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_parse_values_without_eval(tmp_path: Path) -> None:
    data = apply_overrides({"train": {"epochs": 1}}, [
        "train.epochs=3", "train.lr=1e-3", "train.init_from=null", "data.specaug=false",
        "train.betas=[0.9, 0.9]", "name=__import__('os').system('x')", "kd.enabled=false",
    ])
    assert data["train"] == {"epochs": 3, "lr": "1e-3", "init_from": None, "betas": [0.9, 0.9]}
    assert data["data"] == {"specaug": False}
    assert data["name"] == "__import__('os').system('x')"  # a plain string, never evaluated
    cfg = config_from_dict(data)
    assert cfg.train.epochs == 3 and cfg.train.lr == 1e-3 and cfg.kd.enabled is False
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides({}, ["train.epochs"])
    with pytest.raises(ConfigError, match="'name' is not a section"):
        apply_overrides({"name": "x"}, ["name.sub=1"])
    with pytest.raises(ConfigError, match="unknown config key 'train.nope'"):
        load_config(_write(tmp_path, "train: {}\n"), ["train.nope=1"])


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_resolve_model_config_preset_and_overrides() -> None:
    from kdlab.models.config import PRESETS

    cfg = config_from_dict({"model": {"preset": "XS", "config": {"enc_blocks": 2}}})
    mc = resolve_model_config(cfg.model)
    assert mc.d_model == PRESETS["XS"].d_model and mc.enc_blocks == 2
    full = config_from_dict({"model": {"preset": None, "config": {"d_model": 8, "heads": 2}}})
    assert resolve_model_config(full.model).d_model == 8
    with pytest.raises(ConfigError, match="unknown preset"):
        resolve_model_config(config_from_dict({"model": {"preset": "XXL"}}).model)
    with pytest.raises(ConfigError, match="model.config"):
        resolve_model_config(config_from_dict({"model": {"config": {"heads": 5}}}).model)


def test_shipped_configs_load() -> None:
    paths = sorted(CONFIGS.glob("*.yaml"))
    assert paths, "kdlab/configs/ ships example configs"
    for path in paths:
        cfg = load_config(path)
        resolve_model_config(cfg.model)


@pytest.mark.parametrize("override", ["train.lr=.nan", "train.grad_clip=.nan", "train.lr=.inf"])
def test_non_finite_overrides_are_one_line_errors(tmp_path: Path, override: str) -> None:
    """``--set train.lr=.nan`` was accepted (a traceback later); ``grad_clip=.nan`` silently trained."""
    path = tmp_path / "c.yaml"
    path.write_text("train: {epochs: 1}\n")
    with pytest.raises(ConfigError, match=rf"{override.split('=')[0]}: must be a finite number"):
        load_config(path, [override])
    assert load_config(path, ["train.grad_clip=0"]).train.grad_clip == 0.0  # <= 0: no clipping, still allowed
