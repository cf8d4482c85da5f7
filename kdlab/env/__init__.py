"""The environment kdlab runs in: the locked requirements (``requirements.lock``) and the post-install
self-check ``kdlab doctor`` (the torch/torchaudio pair, the compiled ops the project calls, espeak-ng, the
browser-test pair).
"""
