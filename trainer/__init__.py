"""Stage 4: dataset JSONL -> a PEFT LoRA / QLoRA adapter for a base model, and its evaluation.

Modules, one job each:
  config    TrainConfig, the keys of config/train_{lora,qlora}.yaml
  data      JSONL rows -> chat-templated token ids with loss only on answer tokens
  model     base model in fp32/bf16 or 4-bit NF4, wrapped with LoRA
  manifest  nanodex.json beside the adapter (base, dataset hash, graph commit, metrics)
  callbacks tokens/s, loss history and a clean stop for the HF Trainer
  run       the training run itself (HF Trainer; checkpoints, --resume, atomic output)
  metrics   answer scoring: referenced symbols, citation validity, perplexity
  eval      `python -m trainer.eval`: base vs base + adapter on held-out questions
`python -m trainer` trains; it runs unchanged under `accelerate launch -m trainer` on several GPUs.
"""
