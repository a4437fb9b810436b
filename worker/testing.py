"""A tiny random Llama and LoRA adapter, built from nothing, for tests and smoke runs.

Same file layout, same tokenizer kind (fast byte-level BPE), same special tokens and chat
template as Llama 3.2 + the appreciation adapter, so the real loading, merging, templating,
batching and sampling code runs on it. Its weights are random: its texts are noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from generation.prompts import CARD_SYSTEM_PROMPT, PromptInputs, build_messages, user_prompt

CHAT_TEMPLATE_PATH = Path(__file__).with_name("llama32_chat_template.jinja")

BOS = "<|begin_of_text|>"
EOS = "<|end_of_text|>"
EOT = "<|eot_id|>"
EOM = "<|eom_id|>"
PAD = "<|finetune_right_pad_id|>"
# Llama 3's special tokens, in its order (ids 128000...); the reserved ones are left out.
SPECIAL_TOKENS = [
    BOS,
    EOS,
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    PAD,
    "<|reserved_special_token_2|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    EOM,
    EOT,
    "<|python_tag|>",
]
# The adapter's target modules (its adapter_config.json).
LORA_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TEST_VOCAB_SIZE = 640
# Llama 3's pre-tokenization regex, from its tokenizer.json.
LLAMA3_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SEED = 1234

# A few report-card sentences and the card's prompts: enough merges for French to tokenize
# into a realistic handful of tokens per word.
_CORPUS = [
    "Ensemble satisfaisant. L'élève participe volontiers et fournit un travail régulier.",
    "Trimestre encourageant : les efforts à l'écrit doivent être poursuivis.",
    "Des résultats fragiles ; un travail plus approfondi des leçons est nécessaire.",
    "Très bon trimestre, élève sérieuse et investie. Il faut continuer ainsi !",
    "La participation orale est à développer pour progresser davantage.",
    "Bilan en progrès ce trimestre ; la méthode de l'analyse de documents est acquise.",
    "Comportement parfois dissipé qui nuit à la concentration et aux résultats.",
    "Un travail personnel insuffisant : il faut s'investir davantage en histoire-géographie.",
    "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n",
    CARD_SYSTEM_PROMPT,
]


def chat_template() -> str:
    return CHAT_TEMPLATE_PATH.read_text(encoding="utf-8")


def build_tokenizer(*, vocab_size: int = TEST_VOCAB_SIZE) -> PreTrainedTokenizerFast:
    """A byte-level BPE with Llama 3's special tokens and Llama 3.2's chat template.

    Byte-level, like Llama 3's: any text encodes, whatever was in the training corpus.
    """
    corpus = list(_CORPUS)
    for trimester, averages in ((1, (12, None, None)), (2, (9.5, 11, None)), (3, (14, 13, 15))):
        corpus.append(
            user_prompt(PromptInputs("Histoire-Géographie", trimester, averages, 6, 7, 5))
        )
    backend = Tokenizer(models.BPE())
    # Llama 3's own pre-tokenizer (its tokenizer.json): "\n\n" before a word stays one piece,
    # so a prompt ending with the assistant header tokenizes the same alone and followed by the
    # answer, as with the real model (GPT-2's split gives "\n", "\nWord" there).
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOT,  # Llama 3.2 Instruct's tokenizer ends a turn with <|eot_id|>
        pad_token=PAD,
        padding_side="left",
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = chat_template()
    return tokenizer


def build_test_model(directory: Path) -> tuple[Path, Path]:
    """Write a tiny random Llama to <directory>/base and a LoRA adapter to <directory>/adapter.

    Deterministic (fixed seeds), a few hundred KB, no network. Returns (base, adapter).
    """
    tokenizer = build_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        rope_theta=500000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=ids[BOS],
        eos_token_id=[ids[EOS], ids[EOM], ids[EOT]],
        pad_token_id=ids[PAD],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    # As in Llama 3.2 Instruct's generation_config.json: sampling with top_p 0.9, plus the
    # library's top_k 50 written out, so tests can prove explicit top_k=0/top_p=1.0 win.
    model.generation_config = GenerationConfig(
        bos_token_id=ids[BOS],
        eos_token_id=[ids[EOS], ids[EOM], ids[EOT]],
        do_sample=True,
        temperature=0.6,
        top_k=50,
        top_p=0.9,
    )
    return write_model_pair(
        directory, model=model, tokenizer=tokenizer, lora_rank=8, lora_alpha=16, lora_b_std=0.5
    )


def write_model_pair(
    directory: Path,
    *,
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    lora_rank: int,
    lora_alpha: int,
    lora_b_std: float,
    seed: int = SEED,
) -> tuple[Path, Path]:
    """Save `model` to <directory>/base and a random LoRA over it, on the adapter's seven
    projections, to <directory>/adapter, each with the tokenizer. Returns (base, adapter)."""
    directory = Path(directory)
    base_dir = directory / "base"
    adapter_dir = directory / "adapter"
    model.save_pretrained(base_dir, safe_serialization=True)
    tokenizer.save_pretrained(base_dir)
    lora_config = LoraConfig(
        r=lora_rank,
        lora_alpha=lora_alpha,
        lora_dropout=0.0,
        bias="none",
        target_modules=list(LORA_TARGET_MODULES),
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)  # lora_A's initialisation draws from the global RNG
        peft_model = get_peft_model(model, lora_config)
    # peft starts lora_B at zero (the adapter changes nothing until trained): randomise it, or
    # merging would be invisible and a broken merge would go unnoticed.
    generator = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                noise = torch.randn(parameter.shape, generator=generator) * lora_b_std
                parameter.copy_(noise.to(parameter.dtype))
    peft_model.save_pretrained(adapter_dir, safe_serialization=True)
    _set_adapter_base(adapter_dir, base_dir)
    tokenizer.save_pretrained(adapter_dir)
    return base_dir, adapter_dir


def _set_adapter_base(adapter_dir: Path, base_dir: Path) -> None:
    config_path = adapter_dir / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = str(base_dir)
    # peft writes target_modules from a set: sort it so the same build gives the same files.
    config["target_modules"] = sorted(config["target_modules"])
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def sample_messages() -> list[list[dict[str, str]]]:
    """Three real prompts (one per trimester), for smoke runs."""
    return [
        build_messages(PromptInputs("Histoire-Géographie", 1, (12, None, None), 6, 7, 5)),
        build_messages(PromptInputs("Anglais", 2, (9.5, 11, None), 8, 4, 6)),
        build_messages(PromptInputs("HGGSP", 3, (14, 13, 15.5), 9, 9, 8)),
    ]
