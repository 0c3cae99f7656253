"""A user's own Hydra training app, searched by the nas sweeper (`hydra/sweeper=nas`).

    python examples/sweeper_app/train.py -m            # the search (see conf/config.yaml)
    python examples/sweeper_app/train.py +arch=...     # one run, with an architecture you give

The sweeper puts the sampled architecture in `cfg.arch` (an Arch YAML node, so
`hydra.utils.instantiate(cfg.arch)` builds it) and a trial handle in `cfg.nas_trial`; the app
reports validation accuracy after every epoch, stops when told to, and returns the accuracy.
"""

from __future__ import annotations

import hydra
import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig

from nas.data import load_dataset
from nas.search import current_trial
from nas.training import RunSettings, fit


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    model = instantiate(cfg.arch)
    data = load_dataset(cfg.data.name, resolution=cfg.data.resolution, channels=cfg.data.channels)
    trial = current_trial(cfg)

    def on_epoch(metrics):
        if trial is None:
            return
        trial.report(metrics.val_acc, metrics.epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {metrics.epoch}")

    settings = RunSettings(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, train_fraction=cfg.train_fraction,
                           flip=False, pad_crop=1, seed=cfg.seed)
    result = fit(model, data.train, data.val, settings, mean=data.mean, std=data.std, device="auto",
                 on_epoch=on_epoch)
    return result.val_acc


if __name__ == "__main__":
    main()
