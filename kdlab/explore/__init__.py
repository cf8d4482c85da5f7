"""The notebooks' data layer: shipped models and utterances in, tensors and search traces out.

``load_model("mini-en/teacher")`` (a shipped model, ``pretrained:…`` or a checkpoint path),
``load_set("mini-en", "test-clean")`` (the shipped check utterances, or any manifest), then
``run_encoder(model, utt)`` for features and CTC posteriors (eq 1-3) and :mod:`kdlab.explore.searches`
for the searches with their traces. No plotting here (that is :mod:`kdlab.viz`) and no widgets
(:mod:`kdlab.widgets`).
"""

from kdlab.explore.model import LoadedModel, load_model
from kdlab.explore.outputs import Outputs, run_encoder
from kdlab.explore.utterance import Utterance, load_set

__all__ = ["LoadedModel", "Outputs", "Utterance", "load_model", "load_set", "run_encoder"]
