"""The artifacts layer: the one place that knows each kind of folder vsrn-deploy writes.

Each kind is declared once, in its own module: its manifest as a dataclass (one field per JSON key,
today's keys and format_version handling), the files it lists ({relative path: {sha256, bytes}}),
its manifest's file name, and the command that rebuilds it (for error text):

- `export`: manifest.json of `vsrn-deploy export` (graphs, vocab.json, test_vectors/, MODEL_CARD.md;
  every graph carries provenance metadata_props: producer, version, manifest format, checkpoint sha256);
- `engines`: the JSON sidecar beside each TensorRT plan (`vsrn-deploy build-engine`);
- `index`: index.json of `vsrn-deploy index`;
- `triton`: vsrn_repo.json of `vsrn-deploy triton-repo`;
- `run`: the demo's run folder (demo_summary.json);
- `embeddings`: embeddings.json and the parquet shards of `vsrn-deploy embed` (written in place, resumable).

`outputs` is the one writer beneath them (ownership marker, locks, `OutputFolder`) and the one parser
of manifest bytes (`parse_manifest`).

Writing (`base.Kind.writer`, built on `vsrn_deploy.artifacts.outputs.OutputFolder` and the atomic writers
of `vsrn_deploy.io.files`): the folder is locked for the whole command (a second writer of the same
folder is refused), built in a staging folder beside it, and committed FILE BY FILE: only files the
folder's previous manifest lists are replaced or removed (any same-named file with --overwrite);
sub-folders are created when missing and never replaced or removed whole, so whatever a user keeps
in the folder (files, folders, symlinks, at any depth) stays. A failure puts every replaced file back.

Reading: one opener per kind (`export.verify_export` / `export.graph_file`,
`index.open_index_manifest`, `engines.read_sidecar`) checks what it opens before first use, and
every manifest is parsed by `outputs.parse_manifest` only (through `base.load_manifest`, or the
ownership reader `outputs.read_owned_manifest`). A changed or missing file is one error line
(exit 2): `<file> changed since <export|the index was built> (sha256 differs from <manifest>);
rebuild with: <command>`.

The rule: verify the sha256 of every file a command will use, before its first use. Measured on this
2-core machine (a 210 MB file, in the page cache): sha256 0.13 s; an ONNX Runtime CPU session of the
same 210 MB graph 0.59 s (so checking a graph adds about a fifth to opening it, which reads it whole
anyway); np.load of the same bytes as .npy 0.03 s whole, 0.1 ms memory-mapped. So an index's
memory-mapped embeddings cost about 0.6 s per GB to check at open (about 12 s for 5 million
1024-d images): paid once per `search`, and it is what stops a same-size change (a flipped byte gave
scores of -2.3e28 when only sizes were checked).

This package imports only `vsrn_deploy.core` and `vsrn_deploy.io` (and onnx lazily, never torch);
backend/, export/, search/, serving/ and the jobs import it.
"""

from vsrn_deploy.artifacts import base, embeddings, engines, export, index, outputs, run, triton

__all__ = ["base", "embeddings", "engines", "export", "index", "outputs", "run", "triton"]
