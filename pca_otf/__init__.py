"""pca_otf: program-conditioned adapters built on the fly, and answers with verified citations."""
