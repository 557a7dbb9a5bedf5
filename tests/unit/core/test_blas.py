"""numpy's and scipy's BLAS pools are capped per process (`Settings.blas_threads`), torch's are not,
and a service process caps them before anything else."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg  # noqa: F401  (its BLAS loaded, as the helper loads it)
import torch
from threadpoolctl import ThreadpoolController

from dinostream.core.blas import limit_blas_threads, rows_matmul
from dinostream.core.errors import BrokerError
from dinostream.core.settings import Settings
from dinostream.service import Service


def _pools() -> dict[str, tuple[str, int]]:
    return {Path(x.filepath).parent.name: (x.user_api, x.num_threads) for x in ThreadpoolController().lib_controllers}


@pytest.fixture
def two_threads() -> Iterator[None]:
    """numpy's and scipy's pools at two threads (the default on a 2-core box), put back afterwards."""
    controller = ThreadpoolController()
    before = {x.filepath: x.num_threads for x in controller.lib_controllers}
    for lib in controller.lib_controllers:
        if lib.user_api == "blas":
            lib.set_num_threads(2)
    yield
    for lib in ThreadpoolController().lib_controllers:
        if lib.filepath in before:
            lib.set_num_threads(before[lib.filepath])


def test_numpy_and_scipy_pools_are_capped_and_torch_s_left(two_threads: None) -> None:
    torch_threads = torch.get_num_threads()
    pools = _pools()
    assert pools["numpy.libs"] == ("blas", 2) and pools["scipy.libs"] == ("blas", 2)  # the check can fail
    assert limit_blas_threads(0) == {} and _pools() == pools  # 0: the libraries' defaults stay
    before = limit_blas_threads(1)
    assert sorted(before.values()) == [2, 2] and all("openblas" in name for name in before)
    after = _pools()
    assert after["numpy.libs"] == ("blas", 1) and after["scipy.libs"] == ("blas", 1)
    assert torch.get_num_threads() == torch_threads  # the model's pool is torch's
    a = np.random.default_rng(0).normal(size=(196, 384))
    assert np.allclose(a @ a.T, np.einsum("id,jd->ij", a, a))  # products still right on one thread


def test_a_service_caps_the_pools_before_it_reaches_for_kafka(two_threads: None) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    settings = Settings.model_validate(
        {"blas_threads": 1, "kafka": {"bootstrap": f"127.0.0.1:{closed}", "connect_timeout_s": 2}}
    )
    with pytest.raises(BrokerError, match="cannot reach Kafka"):
        asyncio.run(Service(settings, ["index"]).run(asyncio.Event()))
    assert _pools()["numpy.libs"] == ("blas", 1)


def test_blas_threads_setting() -> None:
    assert Settings().blas_threads == 1
    with pytest.raises(ValueError, match="blas_threads"):
        Settings.model_validate({"blas_threads": -1})


@pytest.mark.parametrize("shape", [(196, 384), (14, 14, 384), (2, 7, 5, 384)])
def test_rows_matmul_is_the_product_over_the_last_axis(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((384, 64)).astype(np.float32)
    got = rows_matmul(x, w)
    assert got.shape == (*shape[:-1], 64) and got.dtype == np.float32
    np.testing.assert_allclose(got, np.matmul(x, w), rtol=1e-5, atol=1e-4)
    assert not np.shares_memory(got, x)
