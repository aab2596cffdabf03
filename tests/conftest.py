"""Fixtures shared by several test modules."""

import pytest


@pytest.fixture(scope="module")
def one_blas_thread():
    """Matrix products of these sizes gain nothing from BLAS threads, and on a shared 2-core
    machine spinning threads make training runs up to 5x slower; one thread also fixes the
    summation order. threadpoolctl comes with scikit-learn (dev); without it the tests run the
    same, only slower on a busy machine. A module uses it with
    ``pytestmark = pytest.mark.usefixtures("one_blas_thread")``."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
