import que


def test_roundtrip(client: que.Client) -> None:
    job = client.enqueue(que.Job(type="Hello", args=[1, "two"]))
    assert job.id is not None
    locked = client.lock_job()
    assert locked is not None
    with locked:
        assert locked.args == [1, "two"]
        locked.delete()
    assert client.lock_job() is None
