"""The one answer path: code blocks, prompt, citations and local generation.

Every place that puts a question to a model (dataset rows, trainer eval, the query CLI, the
pca_otf runner, self-tune) builds its prompt and packs its code here, so an adapter is trained on
exactly the layout it is served with. It sits just above the kernel in the import order: it
imports `nanodex` and the graph reader, never a stage.
"""
