"""brain: the code graph turned into typed, cited knowledge and a question -> code search.

Reads the extractor's graph only through `extractor.graph.Graph`; writes work/nodes/*.json,
`<graph stem>.search.sqlite` and `<graph stem>.emb.npz` beside the graph. Later stages (dataset,
pca_otf) import `brain.search.Searcher` and `brain.nodes.load_nodes`.
"""
