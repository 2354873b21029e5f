"""Dataset stage: brain nodes + code graph -> grounded, paraphrased, leak-free Q&A rows (JSONL)."""
