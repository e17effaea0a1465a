"""Which errors a retry may fix: the one place domain errors become Airflow's retry or fail.

The collectors, the contract and the settings raise their own errors and know nothing of
Airflow; every task body runs under :func:`fail_or_retry`, so the DAG decides once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from pydantic import ValidationError

from veeam_efficiency.collectors.errors import CollectorConfigError, CollectorError
from veeam_efficiency.contract import ContractError

# A retry fails the same way: the data, the Params or the connection's settings must change.
PERMANENT: tuple[type[BaseException], ...] = (ContractError, CollectorConfigError)


@contextmanager
def fail_or_retry() -> Iterator[None]:
    """Fail the task without retries on a permanent error; retry (with backoff) a collector failure.

    Anything else propagates unchanged: Airflow retries it as it retries any task error.
    """
    try:
        yield
    except ValidationError as exc:
        raise AirflowFailException(f"invalid Params: {exc}") from None
    except PERMANENT as exc:
        raise AirflowFailException(str(exc)) from None
    except CollectorError as exc:
        raise AirflowException(str(exc)) from None  # transient: retried with backoff
