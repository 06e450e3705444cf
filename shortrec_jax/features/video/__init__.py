"""SIFT keyframe vectors of video files: the content feature of the study's Fig. 3.

The study (Cao, IJCSIT 4(1), 2024, section 2.1.4) extracts keyframes from each short video,
describes them with SIFT and feeds a 128-dimensional vector into the embedding layer of
xDeepFM, so that a video nobody has watched yet still has a representation. The modules, in
the order a video goes through them:

- `config`: `VideoFeatureConfig` (keyframes, SIFT, pooling), the results, OpenCV on first use.
- `keyframes`: `read_keyframes`, frames at the strongest shot boundaries.
- `sift`: `sift_descriptors` of each keyframe, `pool_descriptors` into one vector ("mean",
  the study's, or "vlad"/"bow" against a `codebook.Codebook`), `extract_video`.
- `codebook`: k-means codebooks of descriptors.
- `extractor`: `extract_folder`, every video of a folder in several processes into one
  `.npz` keyed by video id (the file stem), resumable, with a JSON report.
- `vectors`: vector files (`save_vectors`, `read_vectors`) and `load_item_vectors`, which
  aligns them with a data set's items; needs no OpenCV.
- `synthetic`: videos with known shots, for tests and benchmarks.
- `cli`: `python -m shortrec_jax.features.video`.

Feeding a model. The vectors become a dense field of the xDeepFM feature encoder
(`shortrec_jax.data.features`), which projects them into the embedding space:

    python -m shortrec_jax.features.video --videos=videos/ --out=vectors.npz --workers=2

    ds = load("kuairec:data/KuaiRec")  # video ids are the item ids: videos/<video_id>.mp4
    ds = dataclasses.replace(ds, item_vectors=load_item_vectors("vectors.npz", ds))
    fields = [*fields, FieldSpec("keyframes", "dense", column="item_vectors")]

OpenCV is the optional extra `video`: `pip install "shortrec-jax[video]"`. It is imported on
first use, so importing any of these modules without it works and only extraction fails.
"""
