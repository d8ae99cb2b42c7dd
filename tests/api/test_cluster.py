import argparse
import io

import pytest

from api.cluster import ClusterOptions, ProgressBar, add_cluster_options, dask_client


def _square(x: int) -> int:
    return x * x


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_cluster_options(parser)
    return parser.parse_args(argv)


def test_options_default_to_a_two_worker_local_cluster(monkeypatch):
    monkeypatch.delenv("PES_DASK_SCHEDULER", raising=False)
    options = ClusterOptions.from_args(_parse([]))
    assert options == ClusterOptions(scheduler=None, workers=2, memory_limit="auto")


def test_scheduler_comes_from_the_option_before_the_environment(monkeypatch):
    monkeypatch.setenv("PES_DASK_SCHEDULER", "tcp://env:8786")
    assert ClusterOptions.from_args(_parse([])).scheduler == "tcp://env:8786"
    options = ClusterOptions.from_args(_parse(["--scheduler", "tcp://opt:8786"]))
    assert options.scheduler == "tcp://opt:8786"


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_a_bad_worker_count_is_refused_by_the_parser(value, capsys):
    with pytest.raises(SystemExit) as exc:
        _parse(["--workers", value])
    assert exc.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_a_local_cluster_runs_tasks_in_worker_processes_and_closes():
    with dask_client(ClusterOptions(workers=2, memory_limit="1GiB")) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert client.gather(client.map(_square, range(6))) == [0, 1, 4, 9, 16, 25]
    assert client.status == "closed"


def test_an_unreachable_scheduler_is_named(monkeypatch):
    # Dask retries a refused connection until the timeout: a second is enough to be refused.
    monkeypatch.setattr("api.cluster.client.CONNECT_TIMEOUT", "1s")
    with pytest.raises(
        RuntimeError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"
    ):
        with dask_client(ClusterOptions(scheduler="tcp://127.0.0.1:9")):
            pass


def test_progress_bar_off_a_terminal_writes_a_line_per_tenth():
    stream = io.StringIO()
    with ProgressBar("check-all", 20, stream=stream) as bar:
        for _ in range(20):
            bar.advance()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("check-all [") and lines[0].endswith("s")
    assert "0/20" in lines[0] and "20/20" in lines[-1]
    assert len(lines) == 11


def test_a_disabled_progress_bar_writes_nothing():
    stream = io.StringIO()
    with ProgressBar("x", 5, stream=stream, enabled=False) as bar:
        bar.advance(5)
    assert stream.getvalue() == ""
