"""Stage 1: a repository -> the code graph (work/graph.sqlite) through Tree-sitter.

Later stages read the graph through `extractor.graph.Graph`; nothing here imports them.
"""
