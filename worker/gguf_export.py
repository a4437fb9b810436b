"""Write a small Llama (the tiny test model, adapter merged) as a GGUF file for llama.cpp.

The tests serve the tiny random model with llama.cpp's server (through llama-cpp-python) to
draft a class against a real OpenAI-compatible server. llama.cpp's convert_hf_to_gguf.py
identifies a BPE pre-tokenizer by the hash of what it makes of a fixed text, which a tokenizer
trained here has no entry for; this writes the file itself with the `gguf` package, tensor for
tensor as convert_hf_to_gguf's LlamaModel does (Q and K rows permuted for llama.cpp's RoPE),
with the tokenizer as llama.cpp's "gpt2" byte-level BPE and the "llama-bpe" pre-tokenizer,
whose split regex is Llama 3's (worker.testing.LLAMA3_SPLIT_PATTERN).

The real model is converted with llama.cpp's own script (README, "Serveur d'inférence
compatible OpenAI"): this writer handles the plain Llama architecture only (no RoPE scaling).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch


def merged_model(base: str | Path, adapter: str | Path | None, *, dtype=torch.float32) -> Any:
    """The base model with the adapter merged into its weights (peft's merge_and_unload)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=dtype)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.eval()
    return model


def permute_rope(weights: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf's LlamaModel.permute: HF's rotate-half layout to llama.cpp's
    interleaved one, per head."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def export_gguf(model: Any, tokenizer: Any, path: str | Path, *, name: str = "tiny-llama") -> Path:
    """Write `model` (a LlamaForCausalLM, float32 kept as float32) and its fast tokenizer."""
    import gguf

    config = model.config
    rope = dict(getattr(config, "rope_parameters", None) or {})
    if rope.get("rope_type", "default") != "default":
        raise ValueError("RoPE scaling is not written by this exporter: use convert_hf_to_gguf.py")
    rope_theta = float(rope.get("rope_theta") or config.rope_theta)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_head = config.num_attention_heads
    n_head_kv = config.num_key_value_heads or n_head
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(rope_theta)
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    _add_tokenizer(writer, tokenizer, vocab_size=config.vocab_size)

    state = {
        key: value.detach().to(torch.float32).numpy() for key, value in model.state_dict().items()
    }
    writer.add_tensor("token_embd.weight", state["model.embed_tokens.weight"])
    writer.add_tensor("output_norm.weight", state["model.norm.weight"])
    if not config.tie_word_embeddings:
        writer.add_tensor("output.weight", state["lm_head.weight"])
    for layer in range(config.num_hidden_layers):
        prefix = f"model.layers.{layer}."
        block = f"blk.{layer}."
        tensors = {
            "attn_norm": state[prefix + "input_layernorm.weight"],
            "attn_q": permute_rope(state[prefix + "self_attn.q_proj.weight"], n_head),
            "attn_k": permute_rope(state[prefix + "self_attn.k_proj.weight"], n_head_kv),
            "attn_v": state[prefix + "self_attn.v_proj.weight"],
            "attn_output": state[prefix + "self_attn.o_proj.weight"],
            "ffn_norm": state[prefix + "post_attention_layernorm.weight"],
            "ffn_gate": state[prefix + "mlp.gate_proj.weight"],
            "ffn_up": state[prefix + "mlp.up_proj.weight"],
            "ffn_down": state[prefix + "mlp.down_proj.weight"],
        }
        for key, value in tensors.items():
            writer.add_tensor(f"{block}{key}.weight", np.ascontiguousarray(value))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _add_tokenizer(writer: Any, tokenizer: Any, *, vocab_size: int) -> None:
    """The byte-level BPE as llama.cpp reads Llama 3's: tokens, types, merges, specials."""
    import gguf

    data = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = tokenizer.get_vocab()
    by_id = {index: token for token, index in vocab.items()}
    special = {token["content"] for token in data.get("added_tokens", []) if token["special"]}
    tokens, types = [], []
    for index in range(vocab_size):
        token = by_id.get(index, f"[PAD{index}]")
        tokens.append(token)
        if token in special:
            types.append(gguf.TokenType.CONTROL)
        elif index in by_id:
            types.append(gguf.TokenType.NORMAL)
        else:
            types.append(gguf.TokenType.UNUSED)
    merges = [
        merge if isinstance(merge, str) else " ".join(merge) for merge in data["model"]["merges"]
    ]
    writer.add_tokenizer_model("gpt2")
    # llama.cpp's name for Llama 3's split regex (the tiny tokenizer uses that very regex).
    writer.add_tokenizer_pre("llama-bpe")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokenizer.bos_token_id)
    # The end of a turn ends a generation, as with Llama 3.2 Instruct.
    writer.add_eos_token_id(tokenizer.convert_tokens_to_ids("<|eot_id|>"))
    writer.add_eot_token_id(tokenizer.convert_tokens_to_ids("<|eot_id|>"))
    writer.add_pad_token_id(tokenizer.pad_token_id)
    # As in Llama 3's GGUF files: the server puts <|begin_of_text|> before a text prompt.
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)
