#!/usr/bin/env python3
"""PyTorch reference of a whole fine-tuning job, for `deno task bench --job` (lib/bench/job.ts).

It trains on exactly what normtune's `finetune` trains on: the bench writes a JSON file (lib/bench/job.ts
`writeJobInput`) holding the model's config, its starting weights (a safetensors file, the checkpoint and
fresh head `finetune` starts from), the names of the trained parameters and of those with weight decay, the
schedule, and every batch of the epoch in the trainer's order (rows bucketed by length, padded to the batch's
longest row, as lib/tuning/batches.ts and lib/bert/batch.ts make them). It builds the same BERT classifier
(Hugging Face's `BertForSequenceClassification` computation and parameter names, dropout included), freezes
what the mode does not train, and runs the epoch: per batch cross-entropy, backward, global-norm clipping,
AdamW (decoupled weight decay except on biases and LayerNorm), the linear warm-up/decay schedule.

Run as lib/bench/torch.ts runs it, with Debian's interpreter and OpenBLAS, the OpenBLAS core overrides unset:
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 tools/torch_job.py JOB.json --threads 2
Prints one JSON line; train_s is the epoch loop (first batch's tensors to last update), setup_s reading the
input and building the model. Needs python3-torch and numpy (no transformers, no safetensors package).
"""
import argparse, json, math, struct, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_safetensors(path):
    """name -> float32 tensor, from a safetensors file of F32 tensors."""
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {info['dtype']}, only F32 is read")
        begin, end = info["data_offsets"]
        array = np.frombuffer(data, dtype="<f4", count=(end - begin) // 4, offset=begin)
        out[name] = torch.from_numpy(array.reshape(info["shape"]).copy())
    return out


class Module(nn.Module):
    """A container whose attributes are set from keyword arguments (for Hugging Face's parameter names)."""

    def __init__(me, /, **children):  # "me": Hugging Face names a child "self"
        super().__init__()
        for key, child in children.items():
            setattr(me, key, child)


def bert_classifier(c, num_labels):
    h, f = c["hidden_size"], c["intermediate_size"]
    ln = lambda: nn.LayerNorm(h, eps=c["layer_norm_eps"])
    layer = lambda: Module(
        attention=Module(
            self=Module(query=nn.Linear(h, h), key=nn.Linear(h, h), value=nn.Linear(h, h)),
            output=Module(dense=nn.Linear(h, h), LayerNorm=ln()),
        ),
        intermediate=Module(dense=nn.Linear(h, f)),
        output=Module(dense=nn.Linear(f, h), LayerNorm=ln()),
    )
    return Module(
        bert=Module(
            embeddings=Module(
                word_embeddings=nn.Embedding(c["vocab_size"], h),
                position_embeddings=nn.Embedding(c["max_position_embeddings"], h),
                token_type_embeddings=nn.Embedding(c["type_vocab_size"], h),
                LayerNorm=ln(),
            ),
            encoder=Module(layer=nn.ModuleList(layer() for _ in range(c["num_hidden_layers"]))),
            pooler=Module(dense=nn.Linear(h, h)),
        ),
        classifier=nn.Linear(h, num_labels),
    )


def logits(model, c, ids, types, mask):
    """What lib/bert/model.ts computes in training (dropout on)."""
    b, s = ids.shape
    h, heads = c["hidden_size"], c["num_attention_heads"]
    d = h // heads
    hidden_p, attn_p = c["hidden_dropout_prob"], c["attention_probs_dropout_prob"]
    cls_p = c.get("classifier_dropout")
    cls_p = hidden_p if cls_p is None else cls_p
    drop = lambda t, p: F.dropout(t, p, training=True) if p > 0 else t
    e = model.bert.embeddings
    x = e.word_embeddings(ids) + e.token_type_embeddings(types) + e.position_embeddings.weight[:s]
    x = drop(e.LayerNorm(x), hidden_p)
    bias = ((1.0 - mask.float()) * -10000.0)[:, None, None, :]
    split = lambda t: t.view(b, s, heads, d).transpose(1, 2)
    for layer in model.bert.encoder.layer:
        a = layer.attention.self
        scores = split(a.query(x)) @ split(a.key(x)).transpose(-1, -2) / math.sqrt(d) + bias
        ctx = (drop(scores.softmax(-1), attn_p) @ split(a.value(x))).transpose(1, 2).reshape(b, s, h)
        x = layer.attention.output.LayerNorm(x + drop(layer.attention.output.dense(ctx), hidden_p))
        inter = F.gelu(layer.intermediate.dense(x))
        x = layer.output.LayerNorm(x + drop(layer.output.dense(inter), hidden_p))
    pooled = drop(torch.tanh(model.bert.pooler.dense(x[:, 0])), cls_p)
    return model.classifier(pooled)


def linear_factor(step, total, warmup):
    """lib/tuning/schedule.ts `linearFactor` (Hugging Face's linear schedule with warm-up)."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("job", help="the JSON file lib/bench/job.ts wrote")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    t_setup = time.perf_counter()
    torch.set_num_threads(args.threads)
    with open(args.job) as f:
        job = json.load(f)
    c = job["config"]
    torch.manual_seed(job["seed"])
    model = bert_classifier(c, job["num_labels"])
    weights = read_safetensors(job["weights"])
    params = dict(model.named_parameters())
    missing = sorted(set(params) - set(weights))
    if missing:
        raise ValueError(f"{job['weights']} lacks {', '.join(missing[:5])}")
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(weights[name].view(param.shape))
    trained, decayed = set(job["trained"]), set(job["decayed"])
    for name, param in params.items():
        param.requires_grad = name in trained
    train = [q for n, q in params.items() if n in trained]
    groups = [
        {"params": [q for n, q in params.items() if n in trained and n in decayed],
         "weight_decay": job["weight_decay"]},
        {"params": [q for n, q in params.items() if n in trained and n not in decayed], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=job["lr"], betas=(0.9, 0.999), eps=1e-8)
    total, warmup = job["total_steps"], job["warmup_steps"]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: linear_factor(t, total, warmup))
    batches = job["batches"]
    model.train()
    setup_s = time.perf_counter() - t_setup

    losses = []
    t0 = time.perf_counter()
    for bt in batches:
        shape = (bt["rows"], bt["seq"])
        ids = torch.tensor(bt["input_ids"], dtype=torch.long).view(shape)
        types = torch.tensor(bt["token_type_ids"], dtype=torch.long).view(shape)
        mask = torch.tensor(bt["attention_mask"], dtype=torch.long).view(shape)
        labels = torch.tensor(bt["labels"], dtype=torch.long)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(logits(model, c, ids, types, mask), labels)
        loss.backward()
        if job["clip"] > 0:
            torch.nn.utils.clip_grad_norm_(train, job["clip"])
        opt.step()
        sched.step()
        losses.append(loss.item())
    train_s = time.perf_counter() - t0
    examples = sum(bt["rows"] for bt in batches)
    print(json.dumps({
        "runtime": f"torch {torch.__version__}", "threads": torch.get_num_threads(), "examples": examples,
        "steps": len(batches), "trainable": sum(q.numel() for q in train), "train_s": round(train_s, 4),
        "setup_s": round(setup_s, 4), "train_loss": sum(losses) / max(1, len(losses)),
        "examples_per_s": round(examples / max(train_s, 1e-9), 2),
    }))


if __name__ == "__main__":
    main()
