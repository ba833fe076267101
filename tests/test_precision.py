"""The precision contract of a saved model (cervix_hf.features.precision): the serving path's
agreement with the head's training-precision outputs, its record in config.json and the card,
measured with the tiny backbone in both precisions."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from cervix_hf.errors import EngineError, EvaluationError, ModelLoadError
from cervix_hf.features import (
    MAX_DELTA_P,
    PrecisionRecord,
    ServingAgreement,
    backbone_for_config,
    create_backbone,
    hardware,
    head_agreement,
    sample_rows,
    serving_agreement,
    serving_twin,
    training_precision,
)

TINY = "test_resnet"


def test_agreement_counts_deltas_and_flips_as_computed_by_hand():
    p_train = [0.10, 0.40, 0.41, 0.90]
    p_serve = [0.1005, 0.4101, 0.4099, 0.90]
    a = serving_agreement(p_train, p_serve, threshold=0.41)
    assert a.n == 4
    assert a.max_abs_delta_p == pytest.approx(0.0101)
    assert a.mean_abs_delta_p == pytest.approx((0.0005 + 0.0101 + 0.0001 + 0.0) / 4)
    # decisions (P >= 0.41): train F F T T, serve F T F T -> two flips
    assert a.n_flips == 2 and not a.ok
    at_threshold = serving_agreement([0.5, 0.2], [0.5, 0.2004], threshold=0.5)
    assert at_threshold.n_flips == 0 and at_threshold.ok  # "at or above" is positive, alike
    assert not serving_agreement([0.2], [0.2 + 1.5 * MAX_DELTA_P], threshold=0.5).ok


@pytest.mark.parametrize(
    ("p_train", "p_serve", "threshold"),
    [([0.1, 0.2], [0.1], 0.5), ([], [], 0.5), ([0.1], [1.2], 0.5), ([0.1], [0.1], 1.5)],
)
def test_agreement_refuses_what_cannot_be_compared(p_train, p_serve, threshold):
    with pytest.raises(EvaluationError):
        serving_agreement(p_train, p_serve, threshold)


def test_records_round_trip_through_json_and_name_bad_fields():
    agreement = serving_agreement([0.1, 0.7], [0.1002, 0.6999], threshold=0.41)
    record = PrecisionRecord("bf16", "torch", agreement=agreement)
    data = json.loads(json.dumps(record.to_dict()))
    assert data["training"] == "bf16" and data["agreement"]["n_flips"] == 0
    assert PrecisionRecord.from_dict(data) == record
    assert PrecisionRecord.from_dict({"training": "fp32", "training_engine": "onnx"}) == (
        PrecisionRecord("fp32", "onnx")
    )
    bad = [
        ({**data, "training": "fp16"}, "precision.training"),
        ({**data, "serving_engine": "tensorrt"}, "precision.serving_engine"),
        ({**data, "extra": 1}, "unknown keys"),
        ({**data, "agreement": {**data["agreement"], "n_flips": "0"}}, "agreement.n_flips"),
        ({**data, "agreement": {**data["agreement"], "n_flips": 5}}, "impossible"),
        ({**data, "agreement": {**data["agreement"], "max_abs_delta_p": float("nan")}}, "finite"),
        ({**data, "agreement": [1]}, "precision.agreement"),
        ("bf16", "must be an object"),
    ]
    for value, says in bad:
        with pytest.raises(ModelLoadError, match=says):
            PrecisionRecord.from_dict(value)


def test_warning_and_card_sentence_say_what_serving_does():
    good = PrecisionRecord("bf16", "torch", agreement=ServingAgreement(64, 0.0004, 0.0001, 0, 0.41))
    assert good.warning() is None
    assert good.card_sentence() == (
        "Head trained on bf16 features (torch), served in fp32 (ONNX Runtime): on 64 "
        "training images the serving path moved P(Abnormal) by at most 0.0004 (mean 0.0001) "
        "and flipped no decision at the threshold 0.410."
    )
    bad = PrecisionRecord("bf16", "torch", agreement=ServingAgreement(64, 0.012, 0.003, 2, 0.41))
    warning = bad.warning()
    assert "SERVING DIFFERS FROM TRAINING" in warning and "0.0120" in warning
    assert "2 decision(s) flipped" in warning and "--precision fp32" in warning
    assert bad.card_sentence().startswith("**Serving differs from training.**")
    assert "**2 decision(s)**" in bad.card_sentence()
    unmeasured = PrecisionRecord("fp32", "onnx")
    assert unmeasured.warning() is None and "not measured" in unmeasured.card_sentence()


def test_sample_rows_is_deterministic_and_spread():
    rows = np.arange(100, 200)
    picked = sample_rows(rows, 5)
    assert len(picked) == 5 and picked[0] == 100 and picked[-1] == 199
    assert np.all(np.diff(picked) > 0)
    np.testing.assert_array_equal(sample_rows(rows, 5), picked)
    np.testing.assert_array_equal(sample_rows(rows[:3], 5), rows[:3])


@pytest.fixture(scope="module")
def cells():
    from cervix_hf.labels import CELL_TYPES, LABELS, binary_label
    from cervix_hf.synthetic import make_cell

    rng = np.random.default_rng(0)
    types = [CELL_TYPES[i % len(CELL_TYPES)] for i in range(40)]
    labels = np.array([LABELS.index(binary_label(t, "clinical")) for t in types])
    return [make_cell(t, rng) for t in types], labels


def fit_head(features, labels):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)).fit(
        features, labels
    )


def test_tiny_backbone_in_both_precisions_against_the_fp32_serving_path(
    cells, tmp_path, monkeypatch
):
    images, labels = cells
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: True)  # autocast runs on any CPU
    for precision, engine in (("bf16", "torch"), ("fp32", "torch")):
        trained = create_backbone(
            TINY,
            pretrained=False,
            device="cpu",
            engine=engine,
            precision=precision,
            cache_dir=tmp_path,
        )
        serve = serving_twin(trained, cache_dir=str(tmp_path))
        assert (serve.engine, serve.precision, serve.runner is not None) == ("onnx", "fp32", True)
        assert serve.weights_sha256 == trained.weights_sha256 and serve.model is trained.model
        f_train, f_serve = trained.embed(images), serve.embed(images)
        head = fit_head(f_train, labels)
        got = head_agreement(head, f_train, f_serve, threshold=0.5, positive_index=1)
        # oracle: the head's probabilities compared directly
        delta = np.abs(head.predict_proba(f_serve)[:, 1] - head.predict_proba(f_train)[:, 1])
        assert got.n == len(images)
        assert got.max_abs_delta_p == pytest.approx(delta.max())
        assert got.mean_abs_delta_p == pytest.approx(delta.mean())
        record = PrecisionRecord.of(trained, got)
        assert (record.training, record.training_engine) == (precision, engine)
        if precision == "fp32":  # torch fp32 and ONNX Runtime fp32 agree to float noise
            assert got.max_abs_delta_p < 1e-4 and got.n_flips == 0 and got.ok
        else:  # bf16 features move the head's output beyond float noise
            assert got.max_abs_delta_p > 1e-5


def test_a_saved_models_features_are_recomputed_at_its_training_precision(
    tiny_backbone, tmp_path, monkeypatch, caplog
):
    from cervix_hf.config import CervixConfig

    config = CervixConfig(
        backbone=TINY,
        pretrained=False,
        init_seed=0,
        weights_sha256=tiny_backbone.weights_sha256,
        data_config=dict(tiny_backbone.data_config),
        feature_dim=tiny_backbone.feature_dim,
    )
    assert training_precision(config) == "fp32"  # a config from before the record
    record = PrecisionRecord("bf16", "torch")
    for value in (record, record.to_dict(), "bf16"):
        assert training_precision(SimpleNamespace(precision=value)) == "bf16"
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: True)
    bf16_config = config.replace(precision=record)
    rebuilt = backbone_for_config(bf16_config, device="cpu")
    assert (rebuilt.engine, rebuilt.precision) == ("torch", "bf16")
    assert rebuilt.cache_key()["precision"] == "bf16"  # the training features' cache entry
    assert backbone_for_config(config, device="cpu").precision == "fp32"
    served = backbone_for_config(bf16_config, device="cpu", precision="fp32")
    assert (served.engine, served.precision) == ("onnx", "fp32")  # what users get
    # a CPU without bf16 hardware computes the serving path's fp32 features, and says so
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: False)
    with caplog.at_level("WARNING", logger="cervix_hf.features.backbone"):
        fallback = backbone_for_config(bf16_config, device="cpu")
    assert fallback.precision == "fp32" and "no bf16 hardware" in caplog.text
    with pytest.raises(EngineError, match="no bf16 instructions"):
        backbone_for_config(bf16_config, device="cpu", precision="bf16")
