"""kdlab: knowledge transfer and distillation from autoregressive (AR) to non-autoregressive (NAR) ASR.

Map of the paper (Gong et al. 2022) to code lives in docs/ARCHITECTURE.md.
"""

__version__ = "0.1.0"
