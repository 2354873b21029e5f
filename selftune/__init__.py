"""Self-tune: after the code changes, refresh the expert from verified answers only.

The loop (`python -m selftune`): incremental extract -> changed modules (changes) ->
curriculum order (curriculum) -> verifiable prompts (propose) -> answers (answer) -> strict
citation check (verify_citations) and mapped pytest nodes in a sandbox (sandbox, verify_tests)
-> rolling distill buffer and the `selftune` dataset kind (distill) -> per-module LoRA adapters
in a bank plus a short refresh of the main adapter (module_adapters) -> per-module report
(report). `pipeline` wires the stages together.
"""
