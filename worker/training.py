"""Fine-tuning the appreciation LoRA with TRL: supervised (SFTTrainer) or from preferences
(DPOTrainer). Plain data in (TRL's conversational rows, folders, options, callbacks), plain
results out: the learning app calls it from its Celery task and never imports torch itself.

The LoRA has the original adapter's shape (r 16, alpha 16, dropout 0, the seven projections).
A run starts from an existing adapter (trainable again) or from a fresh LoRA on the base.
Checkpoints go to the run's folder every `save_steps`; a run started again on the same folder
resumes from the latest one (a worker restart, or a pause to let drafting through). The
callbacks report progress, cancel (`should_stop`) and hand the worker back (`should_pause`:
checkpoint now, return "paused"). Nothing is downloaded: local folders or the Hub cache only.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from generation.adapter_files import adapter_weights_sha256
from generation.backends import release_backends
from worker.testing import LORA_TARGET_MODULES

logger = logging.getLogger(__name__)

SFT = "sft"
DPO = "dpo"
FINISHED = "finished"
CANCELLED = "cancelled"
PAUSED = "paused"
PAD_TOKEN = "<|finetune_right_pad_id|>"  # noqa: S105 - a token, not a password
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

ProgressCallback = Callable[..., None]


@dataclass
class TrainingOptions:
    """A run's hyperparameters; unknown keys are ignored (settings may carry more)."""

    method: str = SFT
    epochs: float = 4
    max_steps: int = 0  # 0: from the epochs
    learning_rate: float = 2e-4
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_length: int = 512
    save_steps: int = 50
    eval_steps: int = 50
    logging_steps: int = 10
    dpo_beta: float = 0.1
    seed: int = 3407
    device: str = "auto"
    lora_r: int = 16
    lora_alpha: int = 16
    lora_dropout: float = 0.0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingOptions:
        known = {item.name: item.type for item in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingResult:
    status: str  # finished, cancelled or paused
    global_step: int
    total_steps: int
    resumed_from_step: int
    adapter_dir: str = ""
    adapter_sha256: str = ""
    eval_loss: float | None = None
    train_rows: int = 0
    eval_rows: int = 0
    trainable_parameters: int = 0


def last_checkpoint(output_dir: Path) -> Path | None:
    """The latest complete checkpoint of a run's folder (None: start from step 0)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    found = [
        (int(match.group(1)), path)
        for path in output_dir.iterdir()
        if path.is_dir()
        and (match := _CHECKPOINT.match(path.name))
        and (path / "trainer_state.json").is_file()
    ]
    return max(found)[1] if found else None


def checkpoint_step(checkpoint: Path | None) -> int:
    if checkpoint is None:
        return 0
    return int(_CHECKPOINT.match(checkpoint.name).group(1))


def total_steps(*, rows: int, options: TrainingOptions) -> int:
    if options.max_steps:
        return int(options.max_steps)
    per_epoch = math.ceil(rows / (options.batch_size * options.gradient_accumulation_steps))
    return max(1, math.ceil(per_epoch * options.epochs))


def train_adapter(
    *,
    base_model: str,
    start_adapter: str | None,
    train_rows: list[dict],
    eval_rows: list[dict],
    output_dir: Path,
    adapter_dir: Path,
    options: TrainingOptions,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    should_pause: Callable[[], bool] | None = None,
) -> TrainingResult:
    """Train (or resume) a LoRA on `train_rows`, report the validation loss on `eval_rows`;
    on completion save the adapter and its tokenizer to `adapter_dir`.

    progress(step=, total=, loss=, eval_loss=) after each logged step and evaluation.
    should_stop(): cancel (no adapter saved). should_pause(): save a checkpoint and return
    "paused"; the same call on the same output_dir resumes from it.
    """
    from transformers import TrainerCallback

    if options.method not in (SFT, DPO):
        raise ValueError(f"Unknown training method: {options.method}")
    if not train_rows:
        raise ValueError("No training rows.")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = _device(options.device)
    # The drafting model this worker holds goes first: the run shares the worker's GPU, and a
    # 3B model beside the one in training would not fit a 24 GB card. The next job reloads it.
    release_backends()
    tokenizer = _load_tokenizer(base_model=base_model, adapter=start_adapter)
    model = _load_trainable_model(
        base_model=base_model, adapter=start_adapter, device=device, options=options
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    steps = total_steps(rows=len(train_rows), options=options)
    resume = last_checkpoint(output_dir)
    outcome = {"status": FINISHED}
    report = progress or (lambda **kwargs: None)

    class _Control(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" in logs or "eval_loss" in logs:
                report(
                    step=state.global_step,
                    total=state.max_steps or steps,
                    loss=logs.get("loss"),
                    eval_loss=logs.get("eval_loss"),
                )

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                return control
            if should_stop is not None and should_stop():
                outcome["status"] = CANCELLED
                control.should_training_stop = True
            elif should_pause is not None and should_pause():
                outcome["status"] = PAUSED
                control.should_training_stop = True
                control.should_save = True
                control.should_log = True
            return control

    trainer = _trainer(
        method=options.method,
        model=model,
        tokenizer=tokenizer,
        train_rows=train_rows,
        eval_rows=eval_rows,
        output_dir=output_dir,
        options=options,
        steps=steps,
        device=device,
        callbacks=[_Control()],
    )
    if resume is None and eval_rows:
        # The starting point's validation loss: the curve then shows what training changed.
        trainer.evaluate()
    logger.info(
        "Training %s: %d rows, %d steps, resuming from %s",
        options.method,
        len(train_rows),
        steps,
        resume or "step 0",
    )
    train_output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    result = TrainingResult(
        status=outcome["status"],
        global_step=train_output.global_step,
        total_steps=steps,
        resumed_from_step=checkpoint_step(resume),
        train_rows=len(train_rows),
        eval_rows=len(eval_rows),
        trainable_parameters=trainable,
    )
    if result.status != FINISHED:
        return result
    if eval_rows:
        last_eval = _last_eval_step(trainer)
        if last_eval == trainer.state.global_step:
            result.eval_loss = _last_eval_loss(trainer)
        else:
            result.eval_loss = trainer.evaluate().get("eval_loss")
    adapter_dir = Path(adapter_dir)
    adapter_dir.mkdir(parents=True, exist_ok=True)
    trainer.model.save_pretrained(adapter_dir, safe_serialization=True)
    tokenizer.save_pretrained(adapter_dir)
    _pin_adapter_base(adapter_dir, base_model)
    result.adapter_dir = str(adapter_dir)
    # One hash for every version, however it was made (generation.adapter_files).
    result.adapter_sha256 = adapter_weights_sha256(str(adapter_dir))
    return result


def _device(setting: str) -> torch.device:
    if setting in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def _weights_dtype(device: torch.device) -> torch.dtype:
    """bf16 on a GPU that has it; fp16 on an older one (T4: mixed precision, the LoRA weights
    stay float32, peft upcasts them); float32 on CPU, where bf16 training loses too much."""
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file()


def _load_tokenizer(*, base_model: str, adapter: str | None) -> Any:
    from transformers import AutoTokenizer

    source = base_model
    if adapter and (not Path(adapter).is_dir() or _has_tokenizer(Path(adapter))):
        source = adapter
    tokenizer = AutoTokenizer.from_pretrained(source)
    if PAD_TOKEN in tokenizer.get_vocab():
        tokenizer.pad_token = PAD_TOKEN
    elif tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_trainable_model(
    *, base_model: str, adapter: str | None, device: torch.device, options: TrainingOptions
) -> Any:
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_model, dtype=_weights_dtype(device))
    if adapter:
        # The adapter goes on training from where it is (its own shape: the original's).
        return PeftModel.from_pretrained(base, adapter, is_trainable=True)
    config = LoraConfig(
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        bias="none",
        target_modules=list(LORA_TARGET_MODULES),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(base, config)


def _trainer(
    *,
    method: str,
    model: Any,
    tokenizer: Any,
    train_rows: list[dict],
    eval_rows: list[dict],
    output_dir: Path,
    options: TrainingOptions,
    steps: int,
    device: torch.device,
    callbacks: list,
) -> Any:
    from datasets import Dataset

    common = {
        "output_dir": str(output_dir),
        "max_steps": steps,
        "per_device_train_batch_size": options.batch_size,
        "per_device_eval_batch_size": options.batch_size,
        "gradient_accumulation_steps": options.gradient_accumulation_steps,
        "learning_rate": options.learning_rate,
        "lr_scheduler_type": "linear",
        "logging_steps": options.logging_steps,
        "eval_strategy": "steps" if eval_rows else "no",
        "eval_steps": options.eval_steps,
        "save_strategy": "steps",
        "save_steps": options.save_steps,
        "save_total_limit": 2,
        "seed": options.seed,
        "report_to": [],
        "use_cpu": device.type == "cpu",
        "bf16": _weights_dtype(device) == torch.bfloat16,
        "fp16": _weights_dtype(device) == torch.float16,
        "max_length": options.max_length,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        "remove_unused_columns": True,
    }
    train_dataset = Dataset.from_list(train_rows)
    eval_dataset = Dataset.from_list(eval_rows) if eval_rows else None
    if method == SFT:
        from trl import SFTConfig, SFTTrainer

        # Prompt-completion rows: the loss is on the teacher's text, not on the fixed prompt.
        return SFTTrainer(
            model=model,
            args=SFTConfig(**common, completion_only_loss=True),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            callbacks=callbacks,
        )
    from trl import DPOConfig, DPOTrainer

    # A PEFT model: the reference is the same model with the adapter switched off.
    return DPOTrainer(
        model=model,
        args=DPOConfig(**common, beta=options.dpo_beta),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
    )


def _last_eval_step(trainer: Any) -> int | None:
    steps = [entry["step"] for entry in trainer.state.log_history if "eval_loss" in entry]
    return steps[-1] if steps else None


def _last_eval_loss(trainer: Any) -> float | None:
    losses = [entry["eval_loss"] for entry in trainer.state.log_history if "eval_loss" in entry]
    return losses[-1] if losses else None


def _pin_adapter_base(adapter_dir: Path, base_model: str) -> None:
    config_path = adapter_dir / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_model
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
