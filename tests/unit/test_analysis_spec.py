"""The analyses a command line asks for: checked, refused with the flag named, turned into
the spec a plan keeps (deployer.analysis.spec)."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from deployer.analysis import spec as s
from deployer.analysis.compare import ALPHA, MIN_SAMPLES, TRACK, require_scipy
from deployer.errors import InvalidInput
from deployer.exitcodes import ExitCode

PROMETHEUS = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: error-rate
spec:
  args:
  - name: service-name
  - name: app
  - name: window
    value: 1m
  metrics:
  - name: error-rate
    interval: 30s
    successCondition: result[0] <= 0.05
    provider:
      prometheus:
        address: http://prometheus.monitoring:9090
        query: sum(rate(e{svc="{{args.service-name}}",app="{{args.app}}"}[{{args.window}}]))
"""

WEB = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: smoke
spec:
  metrics:
  - name: smoke
    successCondition: result == true
    provider:
      web:
        url: http://checker.example/ok
        jsonPath: "{$.ok}"
"""

JOB = """\
apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
metadata:
  name: job
spec:
  metrics:
  - name: integration
    provider:
      job:
        spec:
          backoffLimit: 0
          template:
            spec:
              containers:
              - name: test
                image: tests:latest
              restartPolicy: Never
"""

QUERY = f'sum(rate(http_requests_total{{app="hello",track="{TRACK}",code=~"5.."}}[30s]))'
PROM_URL = "http://prometheus.monitoring:9090"


@pytest.fixture
def write(tmp_path):
    def write(text: str, name: str = "analysis.yaml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return str(path)
    return write


def refused(**kw) -> InvalidInput:
    with pytest.raises(InvalidInput) as exc:
        s.build(**kw)
    assert exc.value.exit_code == ExitCode.INVALID
    return exc.value


# ------------------------------------------------------------------ --arg NAME=VALUE


def test_parse_args_reads_name_value_pairs_and_nothing_is_an_empty_mapping():
    assert s.parse_args(None) == {}
    assert s.parse_args([]) == {}
    assert s.parse_args(["service-name=hello", "a_b.c=1"]) == {"service-name": "hello",
                                                               "a_b.c": "1"}


def test_parse_args_splits_at_the_first_equals_and_keeps_the_rest_of_the_value():
    assert s.parse_args(['selector=app="hello",code=~"5.."']) == {
        "selector": 'app="hello",code=~"5.."'}
    assert s.parse_args(["empty="]) == {"empty": ""}
    assert s.parse_args(["multi=line one\nline two"]) == {"multi": "line one\nline two"}


def test_the_same_arg_twice_with_the_same_value_is_accepted():
    assert s.parse_args(["a=1", "a=1"]) == {"a": "1"}


def test_the_same_arg_twice_with_two_values_is_refused_naming_both():
    with pytest.raises(InvalidInput) as exc:
        s.parse_args(["a=1", "a=2"])
    assert exc.value.id == "invalid-analysis"
    assert exc.value.message == "--arg a is given twice, as '1' and '2'"


@pytest.mark.parametrize("text", ["no-value", "=value", "two words=x", "", "a/b=c"])
def test_an_arg_that_is_not_name_value_is_refused(text):
    with pytest.raises(InvalidInput) as exc:
        s.parse_args([text])
    assert exc.value.id == "invalid-analysis"
    assert exc.value.message == f"--arg {text!r} is not NAME=VALUE"
    assert exc.value.hint == "e.g. --arg service-name=hello"


# ------------------------------------------------------------------ --max-error-rate


@pytest.mark.parametrize(("text", "value"), [
    ("5", 5.0), ("0.5", 0.5), ("0.5%", 0.5), (" 2.5 ", 2.5), ("0", 0.0), ("100", 100.0),
    ("100%", 100.0), ("1e1", 10.0),
])
def test_error_rate_reads_a_percentage(text, value):
    assert s.error_rate(text) == value


@pytest.mark.parametrize("text", ["-1", "100.1", "101%", "abc", "", "%", "nan", "NaN%", "inf",
                                  "-inf", "5%%"])
def test_error_rate_outside_0_to_100_or_not_a_number_is_refused(text):
    with pytest.raises(InvalidInput) as exc:
        s.error_rate(text)
    assert exc.value.id == "invalid-probe"
    assert exc.value.message == f"--max-error-rate {text!r} is not a percentage from 0 to 100"
    assert exc.value.hint == "e.g. --max-error-rate 5 (five percent)"


# ------------------------------------------------------------------ build: nothing asked


def test_nothing_asked_is_no_spec():
    assert s.build() is None
    assert s.build(files=[], args=[], compare=[]) is None


def test_an_arg_without_analysis_is_refused():
    error = refused(args=["service-name=hello"])
    assert error.id == "invalid-analysis"
    assert error.message == "--arg is given without --analysis: no template takes it"


# ------------------------------------------------------------------ --analysis FILE


def test_analysis_files_become_their_documents_args_metric_names_and_no_job(write):
    path = write(PROMETHEUS)
    spec = s.build(files=[path], args=["service-name=hello"])
    assert spec is not None
    assert set(spec) == {"templates", "args", "metrics", "jobs"}
    (entry,) = spec["templates"]
    assert entry["source"] == path
    document = entry["document"]
    assert (document["kind"], document["metadata"]["name"]) == ("AnalysisTemplate", "error-rate")
    # the document as written: placeholders not filled in (the run fills them in)
    metric = document["spec"]["metrics"][0]
    assert "{{args.service-name}}" in metric["provider"]["prometheus"]["query"]
    assert spec["args"] == {"service-name": "hello"}
    assert spec["metrics"] == ["error-rate"]
    assert spec["jobs"] is False


def test_the_spec_is_plain_json_as_a_plan_records_it(write):
    spec = s.build(files=[write(PROMETHEUS)], args=["service-name=hello"],
                   probe="/", max_error_rate="5", compare=[QUERY], prometheus=PROM_URL)
    assert json.loads(json.dumps(spec)) == spec


def test_several_files_and_documents_keep_their_order_and_sources(write):
    first = write(PROMETHEUS + "---\n" + WEB, "one.yaml")
    second = write(JOB, "two.yaml")
    spec = s.build(files=[first, second], args=["service-name=hello"])
    assert spec is not None
    assert [t["source"] for t in spec["templates"]] == [first, first, second]
    assert [t["document"]["metadata"]["name"] for t in spec["templates"]] == [
        "error-rate", "smoke", "job"]
    assert spec["metrics"] == ["error-rate", "smoke", "integration"]
    assert spec["jobs"] is True


def test_a_job_metric_is_flagged_for_the_permission_check(write):
    spec = s.build(files=[write(JOB)])
    assert spec is not None and spec["jobs"] is True and spec["metrics"] == ["integration"]
    assert spec["args"] == {}


def test_arguments_deployer_provides_need_no_arg(write):
    # "app" is declared without a value, but deployer gives it; service-name is not
    error = refused(files=[write(PROMETHEUS)])
    assert error.id == "invalid-analysis"
    assert error.message == "analysis argument 'service-name' has no value"
    assert error.hint == "--arg service-name=VALUE"


def test_an_arg_no_template_declares_is_refused_naming_it(write):
    error = refused(files=[write(PROMETHEUS)], args=["service-name=hello", "servce=x"])
    assert error.id == "invalid-analysis"
    assert error.message.startswith("--arg servce: no template declares an argument 'servce'")


def test_an_arg_may_override_a_templates_own_value(write):
    spec = s.build(files=[write(PROMETHEUS)], args=["service-name=hello", "window=5m"])
    assert spec is not None and spec["args"] == {"service-name": "hello", "window": "5m"}


def test_a_file_that_cannot_be_read_is_refused_naming_the_flag(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    error = refused(files=[missing])
    assert error.id == "invalid-analysis"
    assert error.message.startswith(f"--analysis {missing}: cannot read it")


def test_a_bad_template_is_refused_before_the_other_flags_are_looked_at(write):
    bad = write(WEB.replace("      web:\n", "      datadog:\n"))
    error = refused(files=[bad], probe="/", max_error_rate="5")
    assert error.id == "invalid-analysis"
    assert "provider 'datadog' is not supported" in error.message


# ------------------------------------------------------------------ --probe PATH


def test_a_probe_has_its_path_rate_and_100_requests_by_default():
    spec = s.build(probe="/api/health", max_error_rate="2.5%")
    assert spec == {"probe": {"path": "/api/health", "maxErrorRate": 2.5, "requests": 100}}
    assert s.PROBE_REQUESTS == 100


@pytest.mark.parametrize("requests", [1, 250, 1000])
def test_probe_requests_from_1_to_1000_are_kept(requests):
    spec = s.build(probe="/", max_error_rate="0", probe_requests=requests)
    assert spec == {"probe": {"path": "/", "maxErrorRate": 0.0, "requests": requests}}


@pytest.mark.parametrize("requests", [0, -5, 1001])
def test_probe_requests_outside_1_to_1000_are_refused(requests):
    error = refused(probe="/", max_error_rate="5", probe_requests=requests)
    assert error.id == "invalid-probe"
    assert error.message == f"--probe-requests {requests} is invalid: use 1 to 1000"


@pytest.mark.parametrize("path", ["health", "http://x/health", "/a b", "/a\tb", "", " /"])
def test_a_probe_path_that_is_not_a_path_is_refused(path):
    error = refused(probe=path, max_error_rate="5")
    assert error.id == "invalid-probe"
    assert error.message == f"--probe {path!r} is not a path such as / or /api/health"


def test_a_probe_needs_max_error_rate():
    error = refused(probe="/")
    assert error.id == "invalid-probe"
    assert error.message.startswith("--probe needs --max-error-rate PCT")
    assert error.hint == "e.g. --probe / --max-error-rate 5"


@pytest.mark.parametrize("kw", [{"max_error_rate": "5"}, {"probe_requests": 10},
                                {"max_error_rate": "5", "probe_requests": 10}])
def test_probe_settings_without_probe_are_refused(kw):
    error = refused(**kw)
    assert error.id == "invalid-probe"
    assert error.message == "--max-error-rate and --probe-requests go with --probe PATH"


def test_a_bad_max_error_rate_with_a_probe_is_refused():
    error = refused(probe="/", max_error_rate="150")
    assert error.id == "invalid-probe"
    assert "--max-error-rate '150'" in error.message


# ------------------------------------------------------------------ --compare QUERY


def test_a_comparison_has_its_queries_and_the_defaults():
    spec = s.build(compare=[QUERY], prometheus=PROM_URL)
    assert spec == {"compare": {"queries": [QUERY], "prometheus": PROM_URL, "alpha": 0.05,
                                "worse": "higher", "minSamples": 8}}
    assert (ALPHA, MIN_SAMPLES) == (0.05, 8)


def test_comparison_settings_are_kept_and_the_urls_trailing_slash_dropped():
    other = QUERY.replace("5..", "2..")
    spec = s.build(compare=[QUERY, other], prometheus="https://prom.example:9090/", alpha=0.01,
                   worse="lower")
    assert spec is not None
    assert spec["compare"] == {"queries": [QUERY, other], "prometheus": "https://prom.example:9090",
                               "alpha": 0.01, "worse": "lower", "minSamples": 8}


def test_a_query_without_the_track_placeholder_is_refused_with_an_example():
    query = 'sum(rate(http_requests_total{app="hello"}[30s]))'
    error = refused(compare=[QUERY, query], prometheus=PROM_URL)
    assert error.id == "invalid-compare"
    assert error.message.startswith(f"--compare {query!r} has no {{{{track}}}} placeholder")
    assert error.hint is not None and TRACK in error.hint


def test_a_comparison_needs_prometheus():
    error = refused(compare=[QUERY])
    assert error.id == "invalid-compare"
    assert error.message == "--compare needs --prometheus URL: where the queries are run"
    assert error.hint == "e.g. --prometheus http://prometheus.monitoring:9090"
    assert refused(compare=[QUERY], prometheus="").message.startswith("--compare needs")


@pytest.mark.parametrize("url", ["prometheus:9090", "ftp://prometheus:9090", "http://",
                                 "http:///api", "https//prom", " http://prom"])
def test_a_prometheus_that_is_not_an_http_url_is_refused(url):
    error = refused(compare=[QUERY], prometheus=url)
    assert error.id == "invalid-compare"
    assert error.message == f"--prometheus {url!r} is not an http(s) URL"


@pytest.mark.parametrize("url", ["http://prometheus:9O90", "http://prometheus:9090 oops"])
def test_a_prometheus_url_with_a_bad_port_or_spaces_is_refused(url):
    error = refused(compare=[QUERY], prometheus=url)
    assert error.id == "invalid-compare"


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, -0.05, float("nan")])
def test_an_alpha_outside_0_to_0_5_is_refused(alpha):
    error = refused(compare=[QUERY], prometheus=PROM_URL, alpha=alpha)
    assert error.id == "invalid-compare"
    assert error.message.startswith(f"--compare-alpha {alpha:g} is invalid")


@pytest.mark.parametrize("alpha", [0.001, 0.05, 0.49])
def test_an_alpha_inside_0_to_0_5_is_kept(alpha):
    spec = s.build(compare=[QUERY], prometheus=PROM_URL, alpha=alpha)
    assert spec is not None and spec["compare"]["alpha"] == alpha


def test_a_direction_other_than_higher_or_lower_is_refused():
    error = refused(compare=[QUERY], prometheus=PROM_URL, worse="sideways")
    assert error.id == "invalid-compare"
    assert error.message.startswith("--compare-worse 'sideways' is invalid")


@pytest.mark.parametrize("kw", [{"prometheus": PROM_URL}, {"alpha": 0.01}, {"worse": "lower"}])
def test_comparison_settings_without_compare_are_refused(kw):
    error = refused(**kw)
    assert error.id == "invalid-compare"
    assert error.message == ("--prometheus, --compare-alpha and --compare-worse go with "
                             "--compare QUERY")


# ------------------------------------------------------------------ everything at once


def test_metrics_probe_and_comparison_go_in_one_spec(write):
    spec = s.build(files=[write(WEB)], probe="/", max_error_rate="1", probe_requests=20,
                   compare=[QUERY], prometheus=PROM_URL)
    assert spec is not None
    assert set(spec) == {"templates", "args", "metrics", "jobs", "probe", "compare"}
    assert spec["metrics"] == ["smoke"]
    assert spec["probe"] == {"path": "/", "maxErrorRate": 1.0, "requests": 20}
    assert spec["compare"]["queries"] == [QUERY]


def test_a_template_with_a_yaml_date_still_gives_a_json_spec(write):
    dated = WEB.replace("        jsonPath: \"{$.ok}\"\n",
                        "        method: POST\n        jsonBody:\n          since: 2024-01-01\n")
    spec = s.build(files=[write(dated)])
    assert spec is not None
    assert json.loads(json.dumps(spec)) == spec


# ------------------------------------------------------------------ scipy, the stats extra


def test_require_scipy_passes_when_scipy_is_installed():
    require_scipy()  # would raise InvalidInput otherwise
    import scipy.stats

    assert hasattr(scipy.stats, "mannwhitneyu")


def hide_scipy(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.stats", None)


def test_require_scipy_says_how_to_install_it_when_missing(monkeypatch):
    hide_scipy(monkeypatch)
    with pytest.raises(InvalidInput) as exc:
        require_scipy()
    assert exc.value.id == "missing-extra"
    assert exc.value.exit_code == ExitCode.INVALID
    assert exc.value.message == "--compare needs scipy, which is not installed"
    assert exc.value.hint is not None and "deployer[stats]" in exc.value.hint
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


def test_a_comparison_without_scipy_is_refused_and_other_analyses_are_not(monkeypatch):
    hide_scipy(monkeypatch)
    assert refused(compare=[QUERY], prometheus=PROM_URL).id == "missing-extra"
    # the probe needs no scipy
    assert s.build(probe="/", max_error_rate="5") is not None


def test_bad_comparison_input_is_said_before_the_missing_scipy(monkeypatch):
    hide_scipy(monkeypatch)
    assert refused(compare=["no placeholder"], prometheus=PROM_URL).id == "invalid-compare"
