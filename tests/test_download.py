import pytest

from peerbench.datasets.peerread import PeerRead, PeerReadArgs
from peerbench.errors import DataError


def pull(**args):
    return PeerRead().pull(PeerReadArgs(**args), progress=False)


def test_downloads_once_then_never_again(peerread_server, isolated_home):
    assert pull(venues=["acl_2017", "conll_2016"]) == 34
    assert all(count == 1 for count in peerread_server.hits.values()) and len(peerread_server.hits) == 34
    assert pull(venues=["acl_2017", "conll_2016"]) == 0
    assert sum(peerread_server.hits.values()) == 34
    assert (isolated_home / "peerread").is_dir()


def test_a_404_names_the_file_and_keeps_what_was_fetched(peerread_server):
    peerread_server.missing.add("conll_2016/dev/reviews/25.json")
    with pytest.raises(DataError) as info:
        pull(venues=["conll_2016"])
    message = str(info.value)
    assert "conll_2016/dev/reviews/25.json: HTTP 404" in message and "5 fetched files were kept" in message
    peerread_server.missing.clear()
    assert pull(venues=["conll_2016"]) == 1  # resumes: only the missing file
    hits = dict(peerread_server.hits)
    assert hits.pop("conll_2016/dev/reviews/25.json") == 2 and set(hits.values()) == {1}


def test_truncated_json_is_refused_and_not_stored(peerread_server, isolated_home):
    rel = "conll_2016/test/parsed_pdfs/151.pdf.json"
    peerread_server.truncated.add(rel)
    with pytest.raises(DataError, match=f"{rel}: not valid JSON"):
        pull(venues=["conll_2016"])
    assert not list(isolated_home.rglob("151.pdf.json*"))
    peerread_server.truncated.clear()
    assert pull(venues=["conll_2016"]) == 1


def test_server_errors_are_retried(peerread_server):
    peerread_server.flaky["conll_2016/dev/reviews/25.json"] = 2
    assert pull(venues=["conll_2016"]) == 6
    assert peerread_server.hits["conll_2016/dev/reviews/25.json"] == 3


def test_train_split_is_listed_once_through_the_contents_api(peerread_server):
    ds = PeerRead()
    assert ds.size(PeerReadArgs(venues=["conll_2016"], splits=["train"])) is None  # unknown before listing
    assert ds.ids("conll_2016", "train") == ["9000", "9001", "9002", "9003"]
    assert ds.size(PeerReadArgs(venues=["conll_2016"], splits=["train"])) == 4
    assert ds.ids("conll_2016", "train") == ["9000", "9001", "9002", "9003"]
    assert peerread_server.hits["listing:/contents/data/conll_2016/train/reviews"] == 1


def test_data_dir_copy_is_never_downloaded_into(peerread_root, peerread_server):
    ds = PeerRead(peerread_root)
    assert ds.pull(PeerReadArgs(), progress=False) == 0
    assert not peerread_server.hits


def test_missing_file_in_a_local_copy(tmp_path):
    (tmp_path / "conll_2016/dev/reviews").mkdir(parents=True)
    (tmp_path / "conll_2016/dev/reviews/5.json").write_text("{}")
    with pytest.raises(DataError, match="conll_2016/dev/parsed_pdfs/5.pdf.json: missing from the PeerRead copy"):
        PeerRead(tmp_path).pull(PeerReadArgs(venues=["conll_2016"], splits=["dev"]), progress=False)


def test_an_unreachable_host_ends_the_pull_at_once_with_the_ways_around_it(tmp_path):
    import socket
    import time

    from peerbench.datasets.download import fetch_files
    from peerbench.errors import DataError

    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(DataError, match=r"^127\.0\.0\.1: unreachable \(a/1\.json: download failed after 2 tries "
                                        r"\(ConnectError\)\); nothing was fetched\. Point --data-dir"):
        fetch_files(f"http://127.0.0.1:{port}/data", [f"a/{i}.json" for i in range(1, 50)], tmp_path,
                    lambda rel, content: None, progress=False)
    assert time.monotonic() - started < 30 and not any(tmp_path.rglob("*.json"))


def test_the_progress_bar_counts_only_fetched_files_and_shows_failures_apart(peerread_server, capsys):
    for rel in ("conll_2016/dev/reviews/25.json", "conll_2016/test/parsed_pdfs/151.pdf.json"):
        peerread_server.missing.add(rel)
    with pytest.raises(DataError, match=r"\(and 1 more failed files\); 4 fetched files were kept"):
        PeerRead().pull(PeerReadArgs(venues=["conll_2016"]), progress=True)
    bar = capsys.readouterr().err
    assert "4/6" in bar and "2 failed" in bar and "6/6" not in bar and "100%" not in bar
