"""Search from Python on images held in memory, then look at the front.

    python examples/search_in_memory.py            # about 3 minutes on 2 CPU cores

The images here are Fashion-MNIST's, read into tensors; any uint8 (0..255) or float (0..1)
tensors or NumPy arrays of N x C x H x W (or N x H x W) images with labels 0..K-1 work the same,
and so does a map-style torch.utils.data.Dataset of (image, label) pairs (PIL images too).
"""

import nas
from nas.data import load_dataset


def main() -> None:
    fashion = load_dataset("fashion_mnist")  # Debian: apt-get install dataset-fashion-mnist
    images, labels = fashion.train.images[:10_000], fashion.train.labels[:10_000]  # uint8, N x 1 x 28 x 28
    test = (fashion.test.images[:2_000], fashion.test.labels[:2_000])

    # A validation split is carved from "train" (data.val_fraction); "test" is read once per front
    # member at the end, never to select. The strings are nas-search's overrides; keywords work too.
    result = nas.search(
        "budget.mflops=5",
        "search.n_trials=12",
        study={"name": "in-memory-example"},
        data={"train": (images, labels), "test": test},
    )

    print(result)
    print(f"\n{'trial':>5} {'val_acc':>8} {'test_acc':>8} {'MMACs':>7}  genotype")
    for member in result.front:
        test_acc = "-" if member.test_acc is None else f"{member.test_acc:.4f}"
        mark = f"  [{member.reference}]" if member.reference else ""
        print(f"{member.trial:>5} {member.val_acc:>8.4f} {test_acc:>8} {member.mmacs:>7.2f}  {member.genotype}{mark}")

    best = result.best  # the most accurate on the validation split
    # nas.build_model(best.arch) builds it untrained; its top-rung weights are in weights/trial_NNNN.pt
    # of the run folder, and `nas-export study.name=in-memory-example` writes deployable folders.
    print(f"\nbest: trial {best.trial}, {nas.complexity(best.arch).mmacs:.2f} MMACs; files in {result.output_dir}")
    print(result.to_dataframe()[["state", "status", "val_acc", "test_acc", "mmacs", "on_front"]].head(12))

    # Later, in another session: the same result from the study's name or its folder.
    again = nas.load_study("in-memory-example")
    assert [m.trial for m in again.front] == [m.trial for m in result.front]


if __name__ == "__main__":  # the search's worker processes import this file: no search at import
    main()
