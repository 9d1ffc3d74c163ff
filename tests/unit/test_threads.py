"""The local profile runs each model stage on one thread (workflow/profiles/default):
that must not change a number. A forward and a training step on one thread are
bit-identical to two on this torch build, at shapes where the matmuls are split."""

from __future__ import annotations

import torch

from cotlens.models import zoo


def _on(threads: int, fn):  # type: ignore[no-untyped-def]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def test_one_thread_gives_the_same_bits_as_two() -> None:
    m = zoo.perturb(zoo.build("llama", attn="sdpa"))
    ids = torch.randint(0, m.config.vocab_size, (4, 96), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        one = _on(1, lambda: m(input_ids=ids).logits)
        two = _on(2, lambda: m(input_ids=ids).logits)
    assert torch.equal(one, two)

    def step() -> list[torch.Tensor]:
        m.zero_grad()
        m(input_ids=ids, labels=ids).loss.backward()
        return [p.grad.clone() for p in m.parameters() if p.grad is not None]

    for a, b in zip(_on(1, step), _on(2, step), strict=True):
        assert torch.equal(a, b)


def test_the_trained_moe_does_not_depend_on_the_profiles_thread_count(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Study 4's model: the MoE's backward is not bit-identical across thread counts, so
    models_train always trains on TRAIN_THREADS whatever the profile gives the rule (local
    2, SLURM 4): the same recipe gives the same weights."""
    from cotlens.experts.prompts import training_corpus
    from cotlens.models.moe_train import train_moe

    entry = {"source": "train", "family": "mixtral", "steps": 6, "seed": 0}
    one = train_moe(entry, tmp_path / "one", training_corpus, threads=1, log_every=0)
    four = train_moe(entry, tmp_path / "four", training_corpus, threads=4, log_every=0)
    assert one["sha256"] == four["sha256"]
