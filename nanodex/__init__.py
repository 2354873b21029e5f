"""nanodex shared kernel: config, artifact paths, errors, logging/progress, the one OpenAI-compatible
client (chat_client) and the umbrella CLI.

Every stage package (extractor, brain, dataset, trainer, inference, pca_otf) may import from
here; this package imports no stage, so data and imports flow one way.
"""

__version__ = "0.1.0"
