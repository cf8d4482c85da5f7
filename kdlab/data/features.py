"""Acoustic features (paper Sec. 4.1): 80-dim log-mel fbank, global CMVN, SpecAugment, speed perturbation.

Order in the data pipeline: waveform → (speed perturbation) → fbank (cached) → (voice and channel
augmentation, `voice_aug.py`) → global CMVN → SpecAugment.
SpecAugment runs after CMVN, so masked cells hold 0 = the global mean.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from kdlab.errors import UserError

SAMPLE_RATE = 16000
SPEEDS = (0.9, 1.0, 1.1)

FRAME_SHIFT_S = 0.01  # fbank frame shift (10 ms): audio seconds = feature frames × shift


@dataclass(frozen=True)
class FbankConfig:
    """Kaldi-compatible log-mel filterbank settings (25 ms windows every 10 ms)."""

    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    sample_rate: int = SAMPLE_RATE

    @property
    def tag(self) -> str:
        """Short fingerprint used to keep caches of different settings apart."""
        return f"fbank{self.num_mel_bins}_{self.frame_length_ms:g}_{self.frame_shift_ms:g}_{self.sample_rate}"


def num_frames(num_samples: int, cfg: FbankConfig | None = None) -> int:
    """Frames Kaldi fbank produces (snip_edges): 1 + (N − window) // shift, or 0 when N < window."""
    cfg = cfg or FbankConfig()
    win = int(cfg.sample_rate * cfg.frame_length_ms / 1000)
    shift = int(cfg.sample_rate * cfg.frame_shift_ms / 1000)
    return 0 if num_samples < win else 1 + (num_samples - win) // shift


def compute_fbank(wave: torch.Tensor, cfg: FbankConfig | None = None, dither: float = 0.0,
                  name: str = "<waveform>") -> torch.Tensor:
    """Log-mel fbank of a mono waveform in [-1, 1]: (N,) → (T, num_mel_bins) float32.

    The waveform is scaled to the 16-bit range first, as Kaldi expects. Use ``dither=0`` at evaluation.
    """
    import torchaudio

    cfg = cfg or FbankConfig()
    if wave.dim() != 1:
        raise ValueError(f"{name}: expected a mono waveform (N,), got shape {tuple(wave.shape)}")
    if num_frames(wave.numel(), cfg) == 0:
        raise ValueError(f"{name}: audio too short for one {cfg.frame_length_ms:g} ms frame "
                         f"({wave.numel()} samples)")
    if not torch.isfinite(wave).all():
        raise ValueError(f"{name}: waveform contains NaN or infinite samples")
    feats = torchaudio.compliance.kaldi.fbank(
        wave.float().unsqueeze(0) * 32768.0, num_mel_bins=cfg.num_mel_bins,
        frame_length=cfg.frame_length_ms, frame_shift=cfg.frame_shift_ms, dither=dither,
        energy_floor=0.0, sample_frequency=cfg.sample_rate,
    )
    return feats  # (T, D)


def speed_perturb(wave: torch.Tensor, factor: float, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Kaldi/sox-style speed perturbation (tempo and pitch change together): (N,) → (≈N / factor,)."""
    import torchaudio.functional as AF

    if factor == 1.0:
        return wave
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    out, _ = AF.speed(wave.unsqueeze(0), sample_rate, factor)
    return out.squeeze(0)


class CMVNError(UserError, ValueError):
    """CMVN statistics that cannot be used (not finite, not positive, not a CMVN file)."""


class GlobalCMVN:
    """Global cepstral mean and variance normalisation, fitted on the training split."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, count: int = 0) -> None:
        if mean.shape != std.shape or mean.dim() != 1:
            raise ValueError(f"mean {tuple(mean.shape)} and std {tuple(std.shape)} must be equal (D,) shapes")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise CMVNError("CMVN mean/std are not finite (the features it was fitted on were not)")
        if (std <= 0).any():
            raise CMVNError("CMVN std must be positive")
        self.mean, self.std, self.count = mean.float(), std.float(), count

    @classmethod
    def fit(cls, feats: Iterable[torch.Tensor], floor: float = 1e-8) -> GlobalCMVN:
        """Per-dimension mean and standard deviation over every frame of ``feats`` ((T, D) each)."""
        total = sq = None
        count = 0
        for x in feats:
            x = x.double()  # (T, D)
            total = x.sum(0) if total is None else total + x.sum(0)
            sq = (x * x).sum(0) if sq is None else sq + (x * x).sum(0)
            count += x.shape[0]
        if total is None or count == 0:
            raise ValueError("cannot fit CMVN: no feature frames")
        mean = total / count
        var = (sq / count - mean * mean).clamp_min(floor)
        return cls(mean.float(), var.sqrt().float(), count)

    @property
    def dim(self) -> int:
        return self.mean.numel()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise (..., D) features."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"features have {x.shape[-1]} dims but CMVN was fitted on {self.dim}")
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    apply = __call__

    def save(self, path: str | Path) -> None:
        data = {"count": self.count, "mean": self.mean.tolist(), "std": self.std.tolist()}
        Path(path).write_text(json.dumps(data) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> GlobalCMVN:
        try:
            data = json.loads(Path(path).read_text())
            return cls(torch.tensor(data["mean"]), torch.tensor(data["std"]), int(data.get("count", 0)))
        except (KeyError, TypeError, ValueError) as err:  # incl. JSONDecodeError, non-finite statistics
            raise CMVNError(f"{path}: not a CMVN file ({err})") from err


@dataclass
class SpecAugConfig:
    """SpecAugment settings with ESPnet's defaults for 80-dim fbank (freq width 0–27, time width 0–40)."""

    num_freq_masks: int = 2
    freq_mask_width: int = 27  # max width in mel bins
    num_time_masks: int = 2
    time_mask_width: int = 40  # max width in frames
    time_mask_ratio: float | None = None  # if set: max width = ratio × utterance length (instead of above)
    time_warp_window: int = 5  # 0 disables time warping
    mask_value: float = 0.0


class SpecAugment:
    """Time warp, frequency masks and time masks; each utterance only within its own valid frames."""

    def __init__(self, cfg: SpecAugConfig | None = None) -> None:
        self.cfg = cfg or SpecAugConfig()

    def __call__(self, feats: torch.Tensor, lengths: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, T, D) with lengths (B,) → augmented copy; or a single (T, D) utterance."""
        if feats.dim() == 2:
            return self.augment_one(feats, generator)
        out = feats.clone()
        lens = lengths.tolist() if lengths is not None else [feats.shape[1]] * feats.shape[0]
        for b, n in enumerate(lens):
            out[b, :n] = self.augment_one(feats[b, :n], generator)
        return out

    def augment_one(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """Augment one utterance (T, D) → (T, D)."""
        c = self.cfg
        x = time_warp(x, c.time_warp_window, gen) if c.time_warp_window > 0 else x.clone()
        t, d = x.shape
        for _ in range(c.num_freq_masks):
            start, width = _random_span(d, c.freq_mask_width, gen)
            x[:, start:start + width] = c.mask_value
        max_t = c.time_mask_width if c.time_mask_ratio is None else int(c.time_mask_ratio * t)
        for _ in range(c.num_time_masks):
            start, width = _random_span(t, max_t, gen)
            x[start:start + width] = c.mask_value
        return x


def _randint(low: int, high: int, gen: torch.Generator | None) -> int:
    """Uniform integer in [low, high)."""
    return int(torch.randint(low, high, (1,), generator=gen))


def _random_span(size: int, max_width: int, gen: torch.Generator | None) -> tuple[int, int]:
    """A span (start, width) with width ~ U[0, min(max_width, size)] inside [0, size)."""
    width = _randint(0, min(max_width, size) + 1, gen)
    return _randint(0, size - width + 1, gen), width


def time_warp(x: torch.Tensor, window: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """Move a random point c to c' ∈ [c − W, c + W) by stretching both sides linearly: (T, D) → (T, D)."""
    t = x.shape[0]
    if t <= 2 * window + 1:
        return x.clone()
    center = _randint(window, t - window, gen)
    warped = _randint(center - window, center + window, gen) + 1
    if warped == center:
        return x.clone()
    left = F.interpolate(x[:center].T.unsqueeze(0), size=warped, mode="linear", align_corners=False)
    right = F.interpolate(x[center:].T.unsqueeze(0), size=t - warped, mode="linear", align_corners=False)
    return torch.cat([left, right], dim=2).squeeze(0).T.contiguous()  # (T, D)


_HASH_CHUNK = 1 << 20
_CONTENT_MEMO: dict[tuple, str] = {}
_MEMO_MAX = 100_000  # entries (about 30 MB); the memo starts afresh beyond that


def file_digest(source: str | Path) -> str:
    """blake2b of a file's bytes, keyed in a per-process memo by (path, size, inode, mtime, ctime).

    ``ctime`` cannot be set back by the user (``touch -d`` sets it to now), so a file rewritten in place is
    hashed again even when its modification time was forged.
    """
    st = os.stat(source)
    memo_key = (os.path.realpath(source), st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    if memo_key not in _CONTENT_MEMO:
        if len(_CONTENT_MEMO) >= _MEMO_MAX:
            _CONTENT_MEMO.clear()
        h = hashlib.blake2b(digest_size=16)
        with open(source, "rb") as f:
            for block in iter(lambda: f.read(_HASH_CHUNK), b""):
                h.update(block)
        _CONTENT_MEMO[memo_key] = h.hexdigest()
    return _CONTENT_MEMO[memo_key]


def content_key(source: str | Path, cfg: FbankConfig) -> str:
    """Cache key of a source audio file's features: its resolved path, size and content hash, and every
    fbank setting. Two corpora with the same utterance ids (whatever their file times) never share an
    entry; neither do two feature configurations."""
    parts = [os.path.realpath(source), str(os.stat(source).st_size), file_digest(source),
             json.dumps(asdict(cfg), sort_keys=True)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


class FeatureCache:
    """Fbank features on disk, one ``.pt`` file per (utterance id, speed factor, source content).

    Files are written atomically, so several data-loader workers may share a cache folder. With a
    ``source`` audio file the entry's name carries :func:`content_key` (path, size, content hash, fbank
    settings): a corpus rebuilt in place, or another corpus reusing the same ids, gets entries of its own.
    """

    def __init__(self, cache_dir: str | Path, cfg: FbankConfig | None = None) -> None:
        self.cfg = cfg or FbankConfig()
        self.root = Path(cache_dir) / self.cfg.tag
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "config.json").write_text(json.dumps(asdict(self.cfg)) + "\n")

    def path(self, utt_id: str, speed: float = 1.0, source: str | Path | None = None) -> Path:
        """Entry file of ``utt_id`` at ``speed``; keyed by the content of ``source`` when given."""
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", utt_id)
        if safe != utt_id:  # keep distinct ids distinct after sanitising
            safe += "-" + hashlib.sha1(utt_id.encode()).hexdigest()[:8]
        key = "" if source is None else "__" + content_key(source, self.cfg)
        return self.root / f"{safe}__sp{speed:g}{key}.pt"

    def get(self, utt_id: str, speed: float = 1.0, source: str | Path | None = None) -> torch.Tensor | None:
        """The cached features, or None (no entry, unreadable entry, unreadable source)."""
        try:
            p = self.path(utt_id, speed, source)
        except OSError:  # the source cannot be read: let the computation report it
            return None
        if not p.is_file():
            return None
        try:
            feats = torch.load(p, weights_only=True)
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError):  # unreadable: recompute
            return None
        return feats if isinstance(feats, torch.Tensor) else None

    def put(self, utt_id: str, speed: float, feats: torch.Tensor, source: str | Path | None = None) -> None:
        """Write an entry atomically (temp file, rename)."""
        p = self.path(utt_id, speed, source)
        tmp = p.with_name(f"{p.name}.{os.getpid()}.tmp")
        torch.save(feats.contiguous().clone(), tmp)
        os.replace(tmp, p)

    def get_or_compute(self, utt_id: str, speed: float, compute: Callable[[], torch.Tensor],
                       source: str | Path | None = None) -> torch.Tensor:
        """Cached features of ``utt_id``, computed and stored on a miss."""
        feats = self.get(utt_id, speed, source)
        if feats is None:
            feats = compute()
            self.put(utt_id, speed, feats, source)
        return feats
