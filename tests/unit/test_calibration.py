"""The calibrated constants still match the real VBR sample (skipped without it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.support.realdata import real_sample_document, require_real_sample
from veeam_efficiency import calibration
from veeam_efficiency.columnar import parse_document_columns
from veeam_efficiency.sessions import window_sessions
from veeam_efficiency.settings import AnalysisSettings


@pytest.fixture(scope="module")
def figures() -> dict[str, float]:
    require_real_sample()
    document = parse_document_columns(json.dumps(real_sample_document()))
    whole = window_sessions(
        document, datetime(2019, 1, 1, tzinfo=UTC), datetime(2021, 1, 1, tzinfo=UTC), AnalysisSettings()
    )
    return calibration.calibrate(whole.scorable)


@pytest.mark.parametrize(
    ("figure", "constant"),
    [
        ("full_dedup", calibration.EXPECTED_DEDUP_FACTOR["Full"]),
        ("increment_dedup", calibration.EXPECTED_DEDUP_FACTOR["Increment"]),
        ("full_compression", calibration.EXPECTED_COMPRESSION_FACTOR["Full"]),
        ("increment_compression", calibration.EXPECTED_COMPRESSION_FACTOR["Increment"]),
        ("noise_log_sd", calibration.NOISE_LOG_SD),
    ],
)
def test_constants_match_the_real_sample(figures: dict[str, float], figure: str, constant: float) -> None:
    assert figures[figure] == pytest.approx(constant, rel=calibration.TOLERANCE), (
        f"{figure} is {figures[figure]:.3f} on the sample, the code says {constant}: "
        "re-derive the constants and docs/context-grade.md"
    )


def test_autocorrelation_matches(figures: dict[str, float]) -> None:
    assert figures["lag1_autocorrelation"] == pytest.approx(calibration.NOISE_LAG1_AUTOCORRELATION, abs=0.02)


def test_kinds_differ_as_veeam_says(figures: dict[str, float]) -> None:
    """Incrementals dedup about 1x by nature; fulls far more."""
    assert 1.0 <= figures["increment_dedup"] < 1.3 <= figures["full_dedup"]
