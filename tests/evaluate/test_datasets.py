"""BEIR loading, length statistics, and the checksum/cache logic of named datasets (no network)."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from tools.evaluate.datasets import (
    BEIR_MD5,
    DatasetError,
    length_stats,
    load_beir,
    resolve_dataset,
    urllib_fetch,
)


def test_fixture_loads_with_only_the_judged_queries(dataset):
    assert len(dataset.corpus) == 30
    assert len(dataset.qrels) == 8
    assert set(dataset.queries) == set(dataset.qrels)  # q9 has no judgements
    assert dataset.qrels["q1"] == {"d01": 2, "d02": 2, "d03": 1, "d04": 0}
    assert dataset.corpus["d01"].indexed_text.startswith("Central Park Central Park is")
    assert dataset.corpus["d03"].indexed_text == dataset.corpus["d03"].text  # no title


def test_length_stats_are_word_counts_of_test_queries_and_passage_bodies(dataset):
    stats = length_stats(dataset)
    query_words = sorted(len(dataset.queries[q].split()) for q in dataset.qrels)
    assert stats.mean_query_words == pytest.approx(sum(query_words) / 8)
    assert stats.median_query_words == (query_words[3] + query_words[4]) / 2
    passage_words = [len(p.text.split()) for p in dataset.corpus.values()]
    assert stats.mean_passage_words == pytest.approx(sum(passage_words) / 30)
    assert (stats.passages, stats.test_queries) == (30, 8)


def copy_fixture(fixture_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ds"
    shutil.copytree(fixture_dir, target)
    return target


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("corpus.jsonl", '{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": \n', r"corpus.jsonl:2: not valid JSON"),  # noqa: E501
        ("corpus.jsonl", '["not", "an", "object"]\n', r"corpus.jsonl:1: expected a JSON object"),
        ("corpus.jsonl", '{"text": "no id"}\n', r"corpus.jsonl:1: missing or non-string '_id'"),
        ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n', r"corpus.jsonl:2: duplicate _id 'd1'"),  # noqa: E501
        ("queries.jsonl", '{"_id": "q1", "text": ""}\n', r"queries.jsonl:1: empty 'text'"),
        ("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td01\n", r"test.tsv:2: expected 3 tab-separated columns"),  # noqa: E501
        ("qrels/test.tsv", "q1\td01\thigh\n", r"test.tsv:1: score 'high' is not an integer"),
        ("qrels/test.tsv", "q404\td01\t1\n", r"test.tsv:1: query-id 'q404' is not in queries.jsonl"),  # noqa: E501
    ],
)  # fmt: skip
def test_malformed_files_fail_with_one_line_naming_file_and_line(
    fixture_dir, tmp_path, file, content, message
):
    target = copy_fixture(fixture_dir, tmp_path)
    (target / file).write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=message) as info:
        load_beir(target)
    assert "\n" not in str(info.value)


def test_missing_file_is_named(fixture_dir, tmp_path):
    target = copy_fixture(fixture_dir, tmp_path)
    (target / "qrels" / "test.tsv").unlink()
    with pytest.raises(DatasetError, match=r"qrels/test.tsv: file not found"):
        load_beir(target)


def test_judged_documents_missing_from_the_corpus_are_counted(fixture_dir, tmp_path):
    target = copy_fixture(fixture_dir, tmp_path)
    with (target / "qrels" / "test.tsv").open("a") as out:
        out.write("q1\tgone\t1\n")
    loaded = load_beir(target)
    assert loaded.missing_docs == 1
    assert loaded.qrels["q1"]["gone"] == 1  # still relevant: recall cannot reach 1


def test_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(DatasetError, match=r"'no-such-set': not a directory and not a known BEIR"):
        resolve_dataset("no-such-set", cache_dir=tmp_path)


def make_archive(fixture_dir: Path, tmp_path: Path, name: str) -> tuple[Path, str]:
    """A zip laid out like BEIR's: one top-level folder named after the dataset."""
    archive = tmp_path / "server" / f"{name}.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zipped:
        for file in fixture_dir.rglob("*"):
            if file.is_file():
                zipped.write(file, f"{name}/{file.relative_to(fixture_dir)}")
    return archive, hashlib.md5(archive.read_bytes(), usedforsecurity=False).hexdigest()


def test_download_is_verified_cached_and_not_repeated(fixture_dir, tmp_path):
    archive, md5 = make_archive(fixture_dir, tmp_path, "minibeir")
    fetched: list[str] = []

    def fetch(url: str, destination: Path) -> None:
        fetched.append(url)
        urllib_fetch(url, destination)

    kwargs = {
        "cache_dir": tmp_path / "cache",
        "fetch": fetch,
        "base_url": archive.parent.as_uri(),
        "checksums": {"minibeir": md5},
    }
    first = resolve_dataset("minibeir", **kwargs)
    second = resolve_dataset("MiniBEIR", **kwargs)
    assert fetched == [f"{archive.parent.as_uri()}/minibeir.zip"]
    assert first.name == second.name == "minibeir"
    assert len(second.corpus) == 30
    assert (tmp_path / "cache" / "minibeir" / "corpus.jsonl").is_file()


def test_checksum_mismatch_is_refused_and_nothing_is_cached(fixture_dir, tmp_path):
    archive, _ = make_archive(fixture_dir, tmp_path, "minibeir")
    cache = tmp_path / "cache"
    with pytest.raises(
        DatasetError, match=r"minibeir.zip: MD5 [0-9a-f]{32} does not match the published 0{32}"
    ):
        resolve_dataset(
            "minibeir",
            cache_dir=cache,
            base_url=archive.parent.as_uri(),
            checksums={"minibeir": "0" * 32},
        )
    assert not (cache / "minibeir").exists()


def test_a_stale_cache_is_downloaded_again(fixture_dir, tmp_path):
    archive, md5 = make_archive(fixture_dir, tmp_path, "minibeir")
    cache = tmp_path / "cache"
    (cache / "minibeir").mkdir(parents=True)
    (cache / "minibeir.md5").write_text("f" * 32)  # cached from another archive
    loaded = resolve_dataset(
        "minibeir", cache_dir=cache, base_url=archive.parent.as_uri(), checksums={"minibeir": md5}
    )
    assert len(loaded.corpus) == 30
    assert (cache / "minibeir.md5").read_text().strip() == md5


def test_archive_members_escaping_the_target_are_refused(tmp_path):
    archive = tmp_path / "server" / "evil.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../outside.txt", "x")
    md5 = hashlib.md5(archive.read_bytes(), usedforsecurity=False).hexdigest()
    with pytest.raises(DatasetError, match=r"member '../outside.txt' escapes the archive"):
        resolve_dataset(
            "evil",
            cache_dir=tmp_path / "c",
            base_url=archive.parent.as_uri(),
            checksums={"evil": md5},
        )
    assert not (tmp_path / "outside.txt").exists()


def test_failed_download_is_one_line(tmp_path):
    with pytest.raises(DatasetError, match=r"scifact.zip: download failed"):
        resolve_dataset("scifact", cache_dir=tmp_path, base_url=(tmp_path / "nowhere").as_uri())


def test_the_four_blog_datasets_carry_the_md5_published_in_the_beir_table():
    # Copied by hand from the BEIR project's dataset table, a second time, so a
    # typo in either place fails here rather than as a refused download.
    assert {n: BEIR_MD5[n] for n in ("trec-covid", "scifact", "nfcorpus", "arguana")} == {
        "trec-covid": "ce62140cb23feb9becf6270d0d1fe6d1",
        "scifact": "5f7d1de60b170fc8027bb7898e2efca1",
        "nfcorpus": "a89dba18a62ef92f7d323ec890a0d38d",
        "arguana": "8ad3e3c2a5867cdced806d6503f29b99",
    }
