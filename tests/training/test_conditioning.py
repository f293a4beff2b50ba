"""The transformer must look at the image: a short fit on a few frames uses the prefix."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from depthcore.data.features import FeatureDataset
from depthcore.data.shards import ShardDataset
from depthcore.evaluation.scales import prefix_ablation
from depthcore.io import file_sha256
from depthcore.models import build_model, resolve_config
from depthcore.models.checkpoint import load_vae, save_vae
from depthcore.models.generate import GREEDY, generate
from depthcore.spaces import rgb_to_model
from depthcore.training.feature_cache import build_feature_cache
from depthcore.training.tokenizer import TokenizerConfig, load_training_images, train_vqvae
from depthcore.training.train_config import TrainConfig
from depthcore.training.trainer import Trainer

#: the default tiny transformer (its local image and pixel paths included), with 2 heads
SMALL_VAR = {"num_heads": 2}
EVAL_FIELDS = ("fD", "prefix", "rgb", "depth", "mask")


@pytest.fixture(scope="module")
def fitted(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A var_tf model fitted for 100 steps on 4 training frames, and those frames' cache.

    The tokenizer is trained first (briefly, on the 12 frames): a random VQ-VAE maps
    different depth maps to near-identical tokens, which leaves nothing to condition on.
    The transformer gets the settings of ``bench.learning.overfit`` (memorises 8 frames
    in ~80 steps).
    """
    root = tmp_path_factory.mktemp("conditioning")
    torch.manual_seed(0)
    model_cfg = resolve_config("tiny", var=SMALL_VAR)
    vae, var = build_model(model_cfg)
    ds = ShardDataset(processed_dir, "train")
    tok_cfg = TokenizerConfig(steps=120, batch_size=4, lr=2e-3)
    train_vqvae(vae, load_training_images(ds, image_size=64), tok_cfg)
    save_vae(root / "vae.safetensors", vae)
    cache = root / "train.h5"
    build_feature_cache(
        vae.eval(), ds, cache, image_size=64, space=ds.space, split="train",
        tokenizer_sha256=file_sha256(root / "vae.safetensors"), max_frames=4,
    )  # fmt: skip
    vae = load_vae(root / "vae.safetensors", expected=model_cfg.vae).vae
    cfg = TrainConfig(
        steps=100, batch_size=4, lr=3e-3, schedule="constant", weight_decay=0.0,
        loss_weighting="scale",
        ckpt_every=0, resume=False, out_dir=str(root),
    )  # fmt: skip
    train = FeatureDataset(cache, fields=Trainer.fields_for(var))
    trainer = Trainer(vae, var, model_cfg, cfg, "var_tf", train, None, root)
    trainer.fit()
    return vae, var.eval(), FeatureDataset(cache, fields=EVAL_FIELDS)


def test_predictions_follow_the_image(fitted: tuple) -> None:
    vae, var, ds = fitted
    batch = ds.get_batch([0, 1])
    prefix_2LC, rgb_23HW = batch["prefix_LC"], rgb_to_model(batch["rgb_3SS"])
    pred_2HW = generate(vae, var, prefix_2LC, sampling=GREEDY, rgb_B3HW=rgb_23HW).pred_B1HW[:, 0]
    swapped = generate(vae, var, prefix_2LC.flip(0), sampling=GREEDY, rgb_B3HW=rgb_23HW.flip(0))
    target_2HW = swapped.pred_B1HW[:, 0]
    # two frames' predictions differ as much as their depth does: at least half the
    # difference of the tokenizer's own reconstructions of the two depth maps
    recon_2HW = vae.idxBl_to_img(vae.f_to_idxBl(batch["fD_Chw"])).mean(dim=1)
    wanted = 0.5 * float((recon_2HW[0] - recon_2HW[1]).abs().mean())
    assert wanted > 0.02  # the frames do differ
    assert float((pred_2HW[0] - pred_2HW[1]).abs().mean()) > wanted
    # swapping the prefixes swaps the predictions: the image, not the position, decides
    torch.testing.assert_close(target_2HW, pred_2HW.flip(0))


def test_zeroed_prefix_predicts_worse(fitted: tuple) -> None:
    vae, var, ds = fitted
    scores = prefix_ablation(
        vae, var, ds, space=str(ds.attrs["space"]), sampling=GREEDY, max_frames=4
    )
    assert scores["abs_rel_zero"] > 1.2 * scores["abs_rel_real"]
    assert scores["abs_rel_other"] > 1.2 * scores["abs_rel_real"]
    assert scores["pred_spread"] > 0.02
