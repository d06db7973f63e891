"""DSE and DSMI of every layer of a small Flax NNX transformer, across training checkpoints.

The task is generated here (nothing is downloaded): sequences of 6 to 16 tokens
(padded to 16, with an attention mask) from a vocabulary split into 4 groups;
the label is the group that holds most of the sequence's tokens. A 4-block
pre-norm transformer (``flax.nnx``), mean-pooled over the kept tokens, learns
it with Adam. At each checkpoint, on held-out sequences, one call of
:func:`jaxdse.layerwise` per quantity gives for every layer (the embedding and
each block's output):

* DSE of all kept tokens (``granularity="tokens"``) with Transformer-Dispersion's
  settings (``jaxdse.recipes.transformer_dispersion()``: rows L2-normalised,
  sigma 1, t 1);
* DSMI(Z; Y) of the mean-pooled sequence vectors with the task's labels
  (``granularity="dataset"``, the same settings, plug-in estimator).

With ``torch`` and ``transformers`` installed, a small GPT-2 built from a config
with random weights (no weights are downloaded) runs on the same token ids with
``output_hidden_states=True``, and ``layerwise`` takes its tuple of torch
tensors as it is.

    python examples/layerwise.py --out outputs/layerwise
"""

from __future__ import annotations

import _common  # noqa: F401  (sets BLAS threads before numpy/jax are imported)
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jaxdse
from jaxdse.io import plotting

VOCAB, GROUPS, T_MAX, T_MIN = 32, 4, 16, 6  # token 0 is padding; tokens 1..31 fall in 4 groups


def make_task(rng, n):
    """``(tokens [n, T_MAX] int32, mask [n, T_MAX] bool, labels [n] int32)``."""
    lengths = rng.integers(T_MIN, T_MAX + 1, size=n)
    mask = np.arange(T_MAX)[None, :] < lengths[:, None]
    # Each sequence leans to one group: a token is from it with probability 0.45, else from any group.
    lean = rng.integers(0, GROUPS, size=n)
    group = np.where(rng.uniform(size=(n, T_MAX)) < 0.45, lean[:, None], rng.integers(0, GROUPS, size=(n, T_MAX)))
    tokens = 1 + group * ((VOCAB - 1) // GROUPS) + rng.integers(0, (VOCAB - 1) // GROUPS, size=(n, T_MAX))
    tokens = np.where(mask, tokens, 0)
    counts = np.stack([((group == g) & mask).sum(1) for g in range(GROUPS)], 1)
    labels = np.argmax(counts + 1e-3 * rng.uniform(size=counts.shape), 1)  # ties broken at random
    return tokens.astype(np.int32), mask, labels.astype(np.int32)


class Block(nnx.Module):
    def __init__(self, width, heads, *, rngs):
        self.norm1 = nnx.LayerNorm(width, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(heads, width, decode=False, rngs=rngs)
        self.norm2 = nnx.LayerNorm(width, rngs=rngs)
        self.up = nnx.Linear(width, 4 * width, rngs=rngs)
        self.down = nnx.Linear(4 * width, width, rngs=rngs)

    def __call__(self, h, mask):
        attend = mask[:, None, None, :] & mask[:, None, :, None]  # [B, heads, T, T]
        h = h + self.attention(self.norm1(h), mask=attend)
        return h + self.down(jax.nn.gelu(self.up(self.norm2(h))))


class Transformer(nnx.Module):
    """Token and position embeddings, ``depth`` blocks, mean pooling over kept tokens, a linear head."""

    def __init__(self, *, width=64, depth=4, heads=4, rngs):
        self.embed = nnx.Embed(VOCAB, width, rngs=rngs)
        self.position = nnx.Embed(T_MAX, width, rngs=rngs)
        self.blocks = nnx.List([Block(width, heads, rngs=rngs) for _ in range(depth)])
        self.head = nnx.Linear(width, GROUPS, rngs=rngs)

    def hidden_states(self, tokens, mask):
        """The embedding and each block's output: a tuple of ``depth + 1`` arrays ``[B, T, width]``."""
        h = self.embed(tokens) + self.position(jnp.arange(tokens.shape[1]))[None]
        states = [h]
        for block in self.blocks:
            h = block(h, mask)
            states.append(h)
        return tuple(states)

    def __call__(self, tokens, mask):
        h = self.hidden_states(tokens, mask)[-1]
        w = mask[..., None].astype(h.dtype)
        return self.head((h * w).sum(1) / w.sum(1))


@nnx.jit
def train_step(model, optimizer, tokens, mask, labels):
    def loss_fn(model):
        logits = model(tokens, mask)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def measure(model, tokens, mask, labels):
    """Accuracy, per-layer token DSE and per-layer DSMI of the pooled vectors, in one compiled call."""
    states = model.hidden_states(tokens, mask)
    settings = {**jaxdse.recipes.transformer_dispersion(), "normalize": "l2"}
    tokens_dse = jaxdse.layerwise(states, mask=mask, granularity="tokens", **settings)
    # Under jit the labels are traced: DSMI's class count and largest class size are given (static).
    mi_options = {"estimator": "plugin", "num_classes": GROUPS, "max_class_size": labels.shape[0]}
    pooled = jaxdse.layerwise(
        states, mask=mask, granularity="dataset", labels=labels, mi_options=mi_options, **settings
    )
    accuracy = jnp.mean(jnp.argmax(model(tokens, mask), -1) == labels)
    return accuracy, tokens_dse.value, pooled.value, pooled.mi


def hugging_face(tokens, mask, *, seed):
    """``layerwise`` on a random-weight GPT-2's ``output_hidden_states`` (torch tensors), or why it did not run."""
    try:
        import torch
        import transformers
    except ImportError as err:
        return {"ran": False, "reason": f"needs torch and transformers ({err.name} is not installed)"}
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=T_MAX, n_embd=64, n_layer=4, n_head=4)
    model = transformers.GPT2Model(config).eval()  # random weights: nothing is downloaded
    with torch.no_grad():
        out = model(
            input_ids=torch.as_tensor(tokens),
            attention_mask=torch.as_tensor(mask, dtype=torch.long),
            output_hidden_states=True,
        )
    profile = jaxdse.layerwise(out.hidden_states, mask=mask, normalize="l2", **jaxdse.recipes.transformer_dispersion())
    return {
        "ran": True,
        "model": f"transformers.GPT2Model, random weights, {config.n_layer} blocks, width {config.n_embd}",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "layers": len(out.hidden_states),
        "dse_tokens": np.asarray(profile.value).tolist(),
    }


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None, help="training steps (default 600; quick 30)")
    args = p.parse_args(argv)
    quick = args.quick
    steps = args.steps or (30 if quick else 600)
    checkpoints = sorted({0, *(int(round(steps * f)) for f in (0.05, 0.15, 0.4, 1.0))})
    batch, n_test, width, depth = 64, (96 if quick else 256), (32 if quick else 64), (2 if quick else 4)

    rng = np.random.default_rng(args.seed)
    test = make_task(rng, n_test)
    model = Transformer(width=width, depth=depth, rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)
    history = {"step": [], "accuracy": [], "dse_tokens": [], "dse_pooled": [], "dsmi_pooled": []}
    bar = _common.progress(steps, "training steps", disable=args.no_progress)
    with _common.Timer() as timer:
        for step in range(steps + 1):
            if step in checkpoints:
                acc, dse_tok, dse_pool, mi = jax.device_get(measure(model, *map(jnp.asarray, test)))
                for name, v in zip(list(history)[1:], (acc, dse_tok, dse_pool, mi)):
                    history[name].append(np.asarray(v).tolist())
                history["step"].append(step)
            if step < steps:
                train_step(model, optimizer, *map(jnp.asarray, make_task(rng, batch)))
                bar.update(1)
    bar.close()

    first, last = np.asarray(history["dsmi_pooled"][0]), np.asarray(history["dsmi_pooled"][-1])
    dse_first, dse_last = np.asarray(history["dse_tokens"][0]), np.asarray(history["dse_tokens"][-1])
    claims = {
        "final_test_accuracy": float(history["accuracy"][-1]),
        "chance_accuracy": 1.0 / GROUPS,
        "dsmi_last_layer_start_bits": float(first[-1]),
        "dsmi_last_layer_end_bits": float(last[-1]),
        "dsmi_embedding_end_bits": float(last[0]),
        # The criteria used here: the model learned the task (test accuracy above twice chance);
        "learned_the_task": bool(history["accuracy"][-1] > 2.0 / GROUPS),
        # the last layer's DSMI with the labels rose by more than 0.1 bit during training;
        "dsmi_last_layer_rose": bool(last[-1] - first[-1] > 0.1),
        # after training, the last layer holds more label information than the embedding;
        "dsmi_grows_with_depth_after_training": bool(last[-1] > last[0] + 0.1),
        # the token-level DSE of the last layer fell during training (the tokens cluster by group).
        "token_dse_last_layer_fell": bool(dse_last[-1] < dse_first[-1]),
    }

    plt = _common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.3))
    names = [f"step {s}" for s in history["step"]]
    plotting.layer_profiles(
        axes[0],
        dict(zip(names, map(np.asarray, history["dse_tokens"]))),
        title="DSE of the kept tokens (L2-normalised, sigma 1)",
    )
    plotting.layer_profiles(
        axes[1],
        dict(zip(names, map(np.asarray, history["dsmi_pooled"]))),
        quantity="mi",
        title="DSMI(Z; Y) of the mean-pooled sequences",
    )
    image = plotting.layer_heatmap(
        axes[2], np.asarray(history["dsmi_pooled"]), history["step"], title="DSMI(Z; Y) (bits): layers x checkpoints"
    )
    fig.colorbar(image, ax=axes[2])
    axes[2].set_xlabel("training step")
    fig.suptitle(
        f"A {depth}-block NNX transformer on the majority-group task, {n_test} held-out sequences "
        f"(test accuracy {history['accuracy'][-1]:.2f}, chance {1 / GROUPS:.2f})",
        y=1.04,
    )
    payload = {
        "settings": dict(
            steps=steps,
            checkpoints=checkpoints,
            batch=batch,
            test_sequences=n_test,
            width=width,
            depth=depth,
            vocabulary=VOCAB,
            groups=GROUPS,
            lengths=[T_MIN, T_MAX],
            learning_rate=3e-3,
            layerwise={**jaxdse.recipes.transformer_dispersion(), "normalize": "l2"},
            framework="flax.nnx + optax",
            quick=quick,
        ),
        **history,
        "seconds": timer.seconds,
        "hugging_face": hugging_face(test[0][:32], test[1][:32], seed=args.seed),
        "claims": claims,
    }
    png, path = _common.save_outputs(fig, args.out, "layerwise", payload)
    print(f"wrote {png} and {path}")
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in claims.items()})
    hf = payload["hugging_face"]
    print("Hugging Face GPT-2 (random weights):", hf["dse_tokens"] if hf["ran"] else hf["reason"])


if __name__ == "__main__":
    main()
