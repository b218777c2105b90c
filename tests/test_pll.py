import os

import numpy as np
import pytest
import torch

from mlm_mia.engine.models import load_masked_lm, max_sequence_length
from mlm_mia.engine.pll import PLLEngine

SENTENCES = [
    "Home medications include metoprolol 25 mg daily, aspirin 81 mg daily.",
    "Labs notable for a creatinine of 1.3 and a hemoglobin of 11.2.",
    "Pt resting comfortably.",
    "Status post a right hip replacement in [**2151**] without complications.",
    "He has a 30 pack year smoking history and lives with his sister in Quincy.",
]


# the engine's device; the references (naive loop, minicons) always run on the CPU.
# MLM_MIA_TEST_DEVICE=cuda runs these tests' engine on a GPU (bench/gpu_session.sh).
DEVICE = torch.device(os.environ.get("MLM_MIA_TEST_DEVICE", "cpu"))


def engine_for(path, **kwargs) -> PLLEngine:
    model, tokenizer = load_masked_lm(path, "--target", DEVICE, torch.float32)
    return PLLEngine(model, tokenizer, max_sequence_length(model, tokenizer), **kwargs)


def naive_scores(path, sentence: str) -> np.ndarray:
    """``[3, n]`` the slow obvious way, one full forward per masked copy, logits everywhere:
    token log-probs, and mean and std of the log-probs over the vocabulary."""
    model, tokenizer = load_masked_lm(path, "--target", torch.device("cpu"), torch.float32)
    ids = tokenizer(sentence)["input_ids"]
    rows = []
    with torch.no_grad():
        for position in range(1, len(ids) - 1):
            masked = list(ids)
            masked[position] = tokenizer.mask_token_id
            logits = model(input_ids=torch.tensor([masked])).logits[0, position]
            logprobs = torch.log_softmax(logits.double(), -1)
            probs = logprobs.exp()
            mean = (probs * logprobs).sum().item()
            std = ((probs * (logprobs - mean) ** 2).sum()).sqrt().item()
            rows.append((logprobs[ids[position]].item(), mean, std))
    return np.array(rows).T


def naive_pll(path, sentence: str) -> float:
    return float(naive_scores(path, sentence)[0].sum())


def test_engine_matches_the_naive_computation(random_roberta):
    scores = engine_for(random_roberta).score(SENTENCES)
    for sentence, score in zip(SENTENCES, scores):
        logprobs, mean, std = naive_scores(random_roberta, sentence)
        assert score.pll == pytest.approx(logprobs.sum(), rel=1e-5)
        np.testing.assert_allclose(score.dist_mean, mean, rtol=1e-4)
        np.testing.assert_allclose(score.dist_std, std, rtol=1e-5)
    # without the distribution statistics: the same log-probs, from logsumexp alone
    lean = engine_for(random_roberta, distribution_stats=False).score(SENTENCES)
    for full, short in zip(scores, lean):
        np.testing.assert_allclose(short.logprobs, full.logprobs, rtol=1e-5, atol=1e-6)
        assert np.isnan(short.dist_std).all()


def test_special_tokens_are_never_scored(random_roberta):
    engine = engine_for(random_roberta)
    for sentence, score in zip(SENTENCES, engine.score(SENTENCES)):
        assert score.n_tokens == len(engine.tokenizer(sentence)["input_ids"]) - 2


@pytest.mark.parametrize("pll", ["original", "within_word_l2r"])
def test_engine_agrees_with_minicons(random_roberta, pll):
    scorer = pytest.importorskip("minicons.scorer")
    reference = scorer.MaskedLMScorer(str(random_roberta), "cpu")
    expected = [np.array([s for _, s in tokens])
                for tokens in reference.token_score(SENTENCES, PLL_metric=pll)]
    got = engine_for(random_roberta, pll=pll).score(SENTENCES)
    for e, g in zip(expected, got):
        assert g.n_tokens == e.size
        assert g.pll == pytest.approx(e.sum(), rel=1e-4)
        np.testing.assert_allclose(g.logprobs, e, rtol=1e-4, atol=1e-5)


def test_within_word_masks_the_later_pieces_of_the_same_word(random_roberta):
    engine = engine_for(random_roberta, pll="within_word_l2r")
    mask = engine.tokenizer.mask_token_id
    (bucket,), _ = engine.encode(["Given zyxqvbw today."])
    words = bucket.words[bucket.sentence, bucket.position].tolist()
    first, pieces = words.index(1), words.count(1)  # "zyxqvbw" is word 1
    assert pieces > 2
    within = bucket.masked_copies(0, len(words), "within_word_l2r", mask)
    original = bucket.masked_copies(0, len(words), "original", mask)
    assert (original == mask).sum(1).tolist() == [1] * len(words)
    # masking a piece also masks the pieces after it, never those before
    assert (within == mask).sum(1).tolist()[first:first + pieces] == list(range(pieces, 0, -1))
    a, b = engine.score(["Given zyxqvbw today."])[0], engine_for(random_roberta).score(["Given zyxqvbw today."])[0]
    assert a.pll != b.pll


def test_batching_and_order_do_not_change_scores(random_roberta, corpus_sentences):
    sentences = [s for _, s in corpus_sentences["heldout"][:60]]
    base = engine_for(random_roberta, batch_tokens=100_000).score(sentences)
    small = engine_for(random_roberta, batch_tokens=64).score(sentences)
    order = np.random.default_rng(0).permutation(len(sentences))
    shuffled = engine_for(random_roberta, batch_tokens=500).score([sentences[i] for i in order])
    for i, j in enumerate(order):
        np.testing.assert_allclose(small[i].logprobs, base[i].logprobs, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(shuffled[i].logprobs, base[j].logprobs, rtol=1e-5, atol=1e-6)


def test_copies_per_forward_pass_are_capped(random_roberta):
    from mlm_mia.engine.pll import MAX_COPIES
    engine = engine_for(random_roberta, batch_tokens=1_000_000)
    sentences = [SENTENCES[2]] * 700  # one length: 700 x 12 copies
    batch_sizes = []
    engine.model.base_model.embeddings.register_forward_hook(
        lambda module, args, output: batch_sizes.append(output.size(0)))
    scores = engine.score(sentences)
    assert sum(batch_sizes) == 700 * scores[0].n_tokens > MAX_COPIES
    assert max(batch_sizes) == MAX_COPIES  # the budget alone would allow them all at once
    np.testing.assert_allclose(scores[-1].logprobs, engine_for(random_roberta).score(SENTENCES[2:3])[0].logprobs,
                               rtol=1e-5, atol=1e-6)


def test_long_sentences_are_truncated_and_flagged(random_roberta):
    engine = engine_for(random_roberta)
    assert engine.max_length == 64
    long = " ".join(["aspirin metoprolol lisinopril furosemide"] * 30)
    short, cut = engine.score([SENTENCES[0], long])
    assert not short.truncated and cut.truncated and cut.n_tokens == 62


def test_bert_models_work_through_their_cls_head(tmp_path, corpus_sentences):
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator([s for _, s in corpus_sentences["train"]], vocab_size=400)
    wordpiece.save_model(str(tmp_path))
    tokenizer = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"), model_max_length=64)
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=64,
                                       max_position_embeddings=64))
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    engine = engine_for(tmp_path)
    assert type(engine.head).__name__ == "BertOnlyMLMHead"
    for sentence, score in zip(SENTENCES[:3], engine.score(SENTENCES[:3])):
        assert score.pll == pytest.approx(naive_pll(tmp_path, sentence), rel=1e-5)


@pytest.mark.parametrize("pll", ["original", "within_word_l2r"])
def test_compiled_engine_gives_the_eager_scores(random_roberta, corpus_sentences, pll):
    sentences = [s for _, s in corpus_sentences["heldout"][:40]]
    eager = engine_for(random_roberta, pll=pll, batch_tokens=300).score(sentences)
    compiled = engine_for(random_roberta, pll=pll, batch_tokens=300, compile=True).score(sentences)
    assert len({len(s.logprobs) for s in compiled}) > 5  # many lengths and batch sizes, one graph
    for e, c in zip(eager, compiled):
        np.testing.assert_allclose(c.logprobs, e.logprobs, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(c.dist_std, e.dist_std, rtol=1e-4, atol=1e-6)
