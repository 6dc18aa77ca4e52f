"""A real Hugging Face Trainer run, small enough for a CPU in seconds: the source of the fixtures in
tests/fixtures/hf-transformers-<version>/ (scripts/capture-fixtures.sh runs it through rtrain).

A randomly initialised tiny GPT-2 trained on random token ids: no tokenizer, no data set and no
model are downloaded (HF_HUB_OFFLINE=1), so the run needs only torch and transformers. Its console
output, trainer_state.json and checkpoint layout are transformers' own.

    python train.py config/training_config.yaml
"""

import sys

import torch
import yaml
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments


class RandomTokens(torch.utils.data.Dataset):
    """Fixed random sequences of token ids; the labels are the inputs (causal LM)."""

    def __init__(self, count, length, vocab_size, seed):
        gen = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, vocab_size, (count, length), generator=gen)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def main(config_path):
    with open(config_path) as f:
        cfg = yaml.safe_load(f)
    model_cfg, train_cfg = cfg["model"], cfg["training"]
    torch.manual_seed(train_cfg["seed"])
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=model_cfg["vocab_size"],
            n_positions=model_cfg["seq_len"],
            n_embd=model_cfg["n_embd"],
            n_layer=model_cfg["n_layer"],
            n_head=model_cfg["n_head"],
        )
    )
    data = RandomTokens(
        train_cfg["samples"], model_cfg["seq_len"], model_cfg["vocab_size"], train_cfg["seed"]
    )
    args = TrainingArguments(
        output_dir=train_cfg["output_dir"],
        max_steps=train_cfg["max_steps"],
        logging_steps=train_cfg["logging_steps"],
        save_steps=train_cfg["save_steps"],
        save_total_limit=train_cfg["save_total_limit"],
        learning_rate=train_cfg["learning_rate"],
        per_device_train_batch_size=train_cfg["batch_size"],
        seed=train_cfg["seed"],
        use_cpu=True,
        report_to="none",
        disable_tqdm=False,
    )
    Trainer(model=model, args=args, train_dataset=data).train(
        resume_from_checkpoint=train_cfg.get("resume_from_checkpoint")
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "config/training_config.yaml")
