"""Parameter counts of the Table 2 presets against ESPnet2's module counts, and ``kdlab params``."""

from __future__ import annotations

import pytest

from kdlab.cli import main as cli_main
from kdlab.models import PRESETS, ModelConfig, build_model, count_parameters, get_preset
from kdlab.models.params_cli import preset_counts

# (preset, vocab, ESPnet2 encoder + decoder + CTC count in millions)
ESPNET_COUNTS = [
    ("L", 4233, 114.97),
    ("L", 5000, 116.15),
    ("M", 4233, 46.2),
    ("M", 5000, 46.8),
    ("S", 4233, 12.42),
    ("S", 5000, 12.72),
    ("XS", 4233, 6.50),
]


def closed_form(cfg: ModelConfig, vocab: int) -> int:
    """Hand-derived count of the ESPnet2 layout (biases everywhere except linear_pos)."""
    d, f, k = cfg.d_model, cfg.ffn_dim, cfg.cnn_kernel
    subsampling = (9 * d + d) + (9 * d * d + d) + (19 * d * d + d)
    enc_block = (
        2 * (2 * d * f + f + d)  # two FFNs
        + 4 * (d * d + d)
        + d * d
        + 2 * d  # q/k/v/out, linear_pos, pos_bias_u/v
        + (2 * d * d + 2 * d)
        + (k * d + d)
        + 2 * d
        + (d * d + d)  # conv module
        + 5 * 2 * d
    )  # five LayerNorms
    dec_block = 8 * (d * d + d) + (2 * d * f + f + d) + 3 * 2 * d
    encoder = subsampling + cfg.enc_blocks * enc_block + 2 * d
    decoder = vocab * d + cfg.dec_blocks * dec_block + 2 * d + (d * vocab + vocab)
    return encoder + decoder + (d * vocab + vocab)


@pytest.mark.parametrize(("preset", "vocab", "millions"), ESPNET_COUNTS)
def test_table2_presets_match_espnet_counts(preset: str, vocab: int, millions: float) -> None:
    for kind in ("ar", "maskctc"):
        counts = preset_counts(preset, vocab, kind)  # built on the meta device
        assert counts["total"] == counts["encoder"] + counts["decoder"] + counts["ctc"]
        assert counts["total"] == closed_form(get_preset(preset), vocab)
        assert abs(counts["total"] / 1e6 - millions) / millions < 0.005


@pytest.mark.parametrize("preset", ["XS", "mini-teacher", "mini-student"])
def test_meta_counts_equal_real_instantiation(preset: str) -> None:
    real = count_parameters(build_model(get_preset(preset), 300, "maskctc"))
    assert real == preset_counts(preset, 300, "maskctc")


def test_mini_presets_sizes() -> None:
    teacher = preset_counts("mini-teacher", 300, "ar")["total"]
    student = preset_counts("mini-student", 300, "maskctc")["total"]
    assert 2e6 <= teacher <= 3e6
    assert 7 <= teacher / student <= 11


def test_config_round_trips_and_validates() -> None:
    for cfg in PRESETS.values():
        assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown keys \\['d_modle'\\]"):
        ModelConfig.from_dict({"d_modle": 4})
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(d_model=100, heads=8)
    with pytest.raises(ValueError, match="odd"):
        PRESETS["M"].with_updates(cnn_kernel=16)
    with pytest.raises(KeyError, match="known presets"):
        get_preset("XL")


def test_params_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["params", "M", "--vocab", "4233"]) == 0
    out = capsys.readouterr().out
    assert "total      46,197,266     46.20 M" in out
    assert "ctc         1,087,881" in out  # 256 * 4233 + 4233
    assert cli_main(["params", "nope", "--vocab", "10"]) == 2
    assert "unknown preset" in capsys.readouterr().err
