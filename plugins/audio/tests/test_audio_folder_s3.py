"""``audiofolder`` on s3:// (the dsreg_s3 fixture's local server): a .zip of clips gives the local folder's examples."""

from __future__ import annotations

import dsreg
from dsreg.testing import pack, write_tree
from dsreg_audio.builders import AudioFolder

from audiodata import class_tree

TREE = class_tree(per_class=3, prefix="clips/")


def clips(splits: dict) -> list[tuple[int, bytes]]:
    return sorted((int(ex["label"]), ex["waveform"].numpy().tobytes()) for ds in splits.values() for ex in ds)


def test_audiofolder_reads_a_zip_on_s3(dsreg_cache, dsreg_register, dsreg_s3, tmp_path) -> None:
    dsreg_register(AudioFolder)
    url = dsreg_s3.upload(pack(TREE, "zip"), dsreg_s3.bucket("audio-data") + "clips.zip")
    local = dsreg.load("audiofolder", url=str(write_tree(tmp_path / "data", TREE)), sample_rate=16000)
    remote = dsreg.load("audiofolder", url=url, sample_rate=16000)
    assert {s: len(ds) for s, ds in remote.items()} == {s: len(ds) for s, ds in local.items()}
    assert clips(remote) == clips(local)
