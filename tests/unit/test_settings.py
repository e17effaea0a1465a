"""settings: validated run-time knobs and the Param specs derived from them."""

from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import ValidationError

from veeam_efficiency.settings import COMPONENTS, HOST_NAME, AnalysisSettings, CollectionSettings, param_specs


def test_defaults_are_the_specification() -> None:
    settings = AnalysisSettings()
    assert settings.weights == {
        "dedup": 0.30,
        "compression": 0.25,
        "trend": 0.20,
        "consistency": 0.15,
        "anomaly": 0.10,
    }
    assert tuple(settings.weights) == COMPONENTS
    assert (settings.grade_a_min, settings.grade_b_min, settings.grade_c_min, settings.grade_d_min) == (85, 70, 55, 40)
    assert (settings.target_dedup_factor, settings.target_compression_factor) == (2.5, 1.8)
    assert settings.price_per_tb_usd == 100.0
    assert settings.anomaly_method == "robust"
    assert settings.anomaly_threshold == 3.0
    assert settings.anomaly_critical_drop == 0.20
    assert settings.trend_p_value == 0.05
    assert settings.trend_min_change == 0.05
    assert settings.high_variance_cv == 0.25
    assert (settings.min_factor, settings.max_factor) == (0.1, 100.0)
    assert settings.lookback_days == 35


def test_weights_must_sum_to_one() -> None:
    with pytest.raises(ValidationError, match="sum to 1"):
        AnalysisSettings(weight_dedup=0.5)  # 0.5 + 0.25 + 0.2 + 0.15 + 0.1 = 1.2
    with pytest.raises(ValidationError, match="sum to 1"):
        AnalysisSettings(weight_anomaly=0.0)  # 0.9


def test_other_weights_summing_to_one_are_accepted() -> None:
    settings = AnalysisSettings(
        weight_dedup=0.2, weight_compression=0.2, weight_trend=0.2, weight_consistency=0.2, weight_anomaly=0.2
    )
    assert sum(settings.weights.values()) == pytest.approx(1.0)


def test_grade_thresholds_must_descend() -> None:
    with pytest.raises(ValidationError, match="descend"):
        AnalysisSettings(grade_b_min=90)  # B above A
    with pytest.raises(ValidationError, match="descend"):
        AnalysisSettings(grade_d_min=60)  # D above C
    settings = AnalysisSettings(grade_a_min=90, grade_b_min=80, grade_c_min=60, grade_d_min=50)
    assert settings.grade_a_min == 90


def test_equal_grade_thresholds_are_refused() -> None:
    with pytest.raises(ValidationError, match="descend"):
        AnalysisSettings(grade_a_min=70, grade_b_min=70)


@pytest.mark.parametrize(
    "field, value",
    [
        ("lookback_days", 0),
        ("min_sessions", 3),
        ("target_dedup_factor", 1.0),  # gt=1
        ("anomaly_method", "iqr"),
        ("anomaly_critical_drop", 1.0),  # lt=1
        ("min_factor", 0.0),  # gt=0
    ],
)
def test_out_of_bounds_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        AnalysisSettings(**{field: value})


def test_unknown_keys_are_ignored_and_settings_are_frozen() -> None:
    settings = AnalysisSettings(lookback_days=7, not_a_setting=1)
    assert settings.lookback_days == 7
    assert not hasattr(settings, "not_a_setting")
    with pytest.raises(ValidationError):
        settings.lookback_days = 8  # type: ignore[misc]


def test_param_specs_integer_and_number_fields() -> None:
    specs = param_specs()
    assert set(specs) == set(AnalysisSettings.model_fields)
    lookback = specs["lookback_days"]
    assert lookback["type"] == "integer"
    assert (lookback["minimum"], lookback["maximum"], lookback["default"]) == (1, 730, 35)
    assert lookback["description"]
    weight = specs["weight_dedup"]
    assert weight["type"] == "number"
    assert (weight["minimum"], weight["maximum"], weight["default"]) == (0, 1, 0.30)
    target = specs["target_dedup_factor"]  # gt=1 -> exclusiveMinimum
    assert target["exclusiveMinimum"] == 1
    assert "minimum" not in target
    assert target["default"] == 2.5
    method = specs["anomaly_method"]
    assert method["type"] == "string"
    assert method["enum"] == ["robust", "zscore"]
    assert method["default"] == "robust"


def test_param_specs_array_field() -> None:
    specs = param_specs(CollectionSettings)
    hosts = specs["vbr_hosts"]
    assert hosts["type"] == "array"
    assert hosts["items"] == {"type": "string", "pattern": HOST_NAME}  # the trigger form refuses "a;b" too
    assert hosts["default"] == []
    assert hosts["maxItems"] == 500
    assert hosts["description"]
    collector = specs["collector"]
    assert collector["enum"] == ["", "ssh", "local", "replay"]
    assert collector["default"] == "replay"  # env VEEAM_COLLECTOR, set by tests/conftest.py
    timeout = specs["collector_timeout_minutes"]
    assert (timeout["type"], timeout["minimum"], timeout["maximum"], timeout["default"]) == ("integer", 1, 720, 30)


@pytest.mark.parametrize("model", [AnalysisSettings, CollectionSettings])
def test_every_param_spec_is_json_and_accepts_its_default(model: type) -> None:
    specs = param_specs(model)
    json.dumps(specs, allow_nan=False)
    defaults = model()
    for name, spec in specs.items():
        assert spec["default"] == getattr(defaults, name), name
        assert "description" in spec, name
        schema = {key: value for key, value in spec.items() if key != "default"}
        jsonschema.validate(spec["default"], schema)


def test_param_spec_rejects_what_the_model_rejects() -> None:
    spec = param_specs()["lookback_days"]
    schema = {key: value for key, value in spec.items() if key != "default"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(0, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(731, schema)


def test_the_history_must_outlive_the_window_it_is_read_for():
    from pydantic import ValidationError

    from veeam_efficiency.settings import CollectionSettings

    assert CollectionSettings.model_validate({}).history_retention_days == 800
    assert CollectionSettings.model_validate({"history_retention_days": 38}).history_retention_days == 38
    for params in ({"history_retention_days": 37}, {"history_retention_days": 100, "lookback_days": 99}):
        with pytest.raises(ValidationError, match="must exceed lookback_days \\+ recheck_days"):
            CollectionSettings.model_validate(params)
    with pytest.raises(ValidationError, match="must exceed"):
        CollectionSettings.model_validate({"history_retention_days": 40, "recheck_days": 5})
