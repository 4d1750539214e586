"""The README's attention-map example: index a synthetic test split, search a caption, draw the top hit.

With `--checkpoint` (e.g. the demo's `runs/demo/model_best.pth.tar` after `vsrn-deploy demo`) the
model is that checkpoint; without, a randomly initialised VSRN at the demo's sizes (36 regions of
128 dims, 128-d embeddings), so the example runs in seconds. Everything goes through the public
commands' library calls: `generate_dataset`, `export_model`, `build_index`, `Index`.

    .venv/bin/python benchmarks/attention_example.py                       # random weights
    .venv/bin/python benchmarks/attention_example.py --checkpoint runs/demo/model_best.pth.tar \\
        --data runs/demo/data/synth_precomp
"""

from __future__ import annotations

import argparse
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None, help="a trained checkpoint (default: random init)")
    parser.add_argument("--data", default=None, help="a synthetic precomp folder (default: generated)")
    parser.add_argument("--work", default="runs/attention_example")
    parser.add_argument("--out", default=str(RESULTS / "attention_example.png"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from vsrn_deploy.export import ExportConfig, export_model
    from vsrn_deploy.search import Index, IndexConfig, build_index
    from vsrn_deploy.search.attention import save_attention_png

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.data:
        data = Path(args.data)
        vocab = data.parent / "vocab" / f"{data.name}_vocab.json"
    else:
        from vsrn_deploy.data.synthetic import generate_dataset

        data = generate_dataset(work / "data", n_train=200, n_dev=20, n_test=200, num_regions=36,
                                feature_dim=128, seed=args.seed, overwrite=True)
        vocab = work / "data" / "vocab" / "synth_precomp_vocab.json"
    checkpoint = args.checkpoint
    if checkpoint is None:
        import torch

        from vsrn_deploy.data.vocab import load_vocab
        from vsrn_deploy.model import VSRN
        from vsrn_deploy.model.checkpoint import save_checkpoint
        from vsrn_deploy.model.config import VSRNConfig

        torch.manual_seed(args.seed)
        words = load_vocab(str(vocab))
        model = VSRN(VSRNConfig(vocab_size=len(words), img_dim=128, embed_size=128, word_dim=64,
                                caption_hidden=64), with_caption=False).eval()
        checkpoint = str(save_checkpoint(work / "random_init.pt", model, vocab=words))
    export_model(checkpoint, work / "export",
                 ExportConfig(precision="fp32", vocab=str(vocab), overwrite=True))
    build_index(IndexConfig(onnx_dir=str(work / "export"), images=str(data / "test_ims.npy"),
                            boxes=str(data / "test_boxes.npy"), captions=str(data / "test_caps.txt"),
                            out=str(work / "index"), progress=False))
    query = (data / "test_caps.txt").read_text(encoding="utf-8").splitlines()[0]
    with Index.open(work / "index") as index:
        hits = index.search_text(query, k=5)
        print(f"query {query!r}: " + ", ".join(f"image {h.id} ({h.score:.3f})" for h in hits))
        top = hits[0].id
        save_attention_png(args.out, index.attention_png(top, title=f"image {top}, top hit of: {query}"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
