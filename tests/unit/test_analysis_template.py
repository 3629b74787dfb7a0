"""Analysis templates in Argo Rollouts' format: loaded, checked, merged."""

from __future__ import annotations

import textwrap

import pytest

from deployer.analysis import template as t
from deployer.errors import InvalidInput

SUCCESS_RATE = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
spec:
  args:
  - name: service-name
  metrics:
  - name: success-rate
    interval: 5m
    # NOTE: prometheus queries return results in the form of a vector.
    # So it is common to access the index 0 of the returned array to obtain the value
    successCondition: result[0] >= 0.95
    failureLimit: 3
    provider:
      prometheus:
        address: http://prometheus.example.com:9090
        # timeout is expressed in seconds
        timeout: 40
        headers:
        - key: X-Scope-OrgID
          value: tenant_a
        query: |
          sum(irate(
            istio_requests_total{reporter="source",destination_service=~"{{args.service-name}}",response_code!~"5.*"}[5m]
          )) /
          sum(irate(
            istio_requests_total{reporter="source",destination_service=~"{{args.service-name}}"}[5m]
          ))
"""

ERROR_RATE = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: error-rate
spec:
  args:
  - name: service-name
  metrics:
  - name: error-rate
    interval: 5m
    successCondition: result[0] <= 0.95
    failureLimit: 3
    provider:
      prometheus:
        address: http://prometheus.example.com:9090
        query: sum(irate(istio_requests_total{destination_service=~"{{args.service-name}}"}[5m]))
"""

WEB = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: args-example
spec:
  args:
  - name: service-name
  - name: api-url
    value: http://example/measure
  metrics:
  - name: webmetric
    successCondition: result == 'true'
    provider:
      web:
        url: "{{ args.api-url }}?service={{ args.service-name }}"
        timeoutSeconds: 20 # defaults to 10 seconds
        headers:
          - key: Authorization
            value: "Bearer token"
        jsonPath: "{$.results.ok}"
"""

JOB = """\
apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
metadata:
  name: job
spec:
  metrics:
  - name: test
    provider:
      job:
        spec:
          backoffLimit: 1
          template:
            spec:
              containers:
              - name: test
                image: my-image:latest
                command: [my-test-script, my-service.default.svc.cluster.local]
              restartPolicy: Never
"""


@pytest.fixture
def write(tmp_path):
    def write(text: str, name: str = "t.yaml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return str(path)
    return write


def refused(paths, given=None) -> InvalidInput:
    with pytest.raises(InvalidInput) as exc:
        t.load(paths, given)
    assert exc.value.exit_code == 2
    return exc.value


def test_the_documented_prometheus_example_loads_with_argos_defaults(write):
    analysis = t.load([write(SUCCESS_RATE)], {"service-name": "hello"})
    (m,) = analysis.metrics
    assert (m.name, m.provider, m.interval, m.count) == ("success-rate", "prometheus", 300.0,
                                                         None)
    assert (m.failure_limit, m.inconclusive_limit, m.consecutive_error_limit) == (3, 0, 4)
    assert m.success is not None and m.success.text == "result[0] >= 0.95"
    assert m.failure is None and m.initial_delay == 0.0
    assert analysis.args == {"service-name": None}
    query = t.filled(m.settings, {"service-name": "hello"})["query"]
    assert 'destination_service=~"hello"' in query and "{{" not in query


def test_without_an_interval_a_metric_is_measured_once(write):
    (m,) = t.load([write(WEB)], {"service-name": "hello"}).metrics
    assert (m.count, m.interval) == (1, None)
    assert m.settings["timeoutSeconds"] == 20
    assert t.filled(m.settings, {"api-url": "http://x/m", "service-name": "hello"})["url"] == \
        "http://x/m?service=hello"


def test_a_job_metric_and_a_cluster_template_load(write):
    (m,) = t.load([write(JOB)]).metrics
    assert m.provider == "job" and m.settings["spec"]["backoffLimit"] == 1
    assert m.success is None and m.failure is None


def test_templates_are_merged_from_one_file_and_from_several(write):
    one = t.load([write(SUCCESS_RATE + "---\n" + ERROR_RATE)], {"service-name": "s"})
    several = t.load([write(SUCCESS_RATE, "a.yaml"), write(ERROR_RATE, "b.yaml")],
                     {"service-name": "s"})
    assert [m.name for m in one.metrics] == [m.name for m in several.metrics] == \
        ["success-rate", "error-rate"]
    assert one.args == {"service-name": None}


def test_a_metric_name_twice_is_refused_naming_both(write):
    error = refused([write(SUCCESS_RATE, "a.yaml"), write(SUCCESS_RATE, "b.yaml")],
                    {"service-name": "s"})
    assert "metric 'success-rate' is also in" in error.message
    assert "a.yaml" in error.message and "b.yaml" in error.message


def test_an_argument_given_two_values_is_refused_one_value_and_none_merge(write):
    other = WEB.replace("name: args-example", "name: other").replace("webmetric", "second")
    same = t.load([write(WEB, "a.yaml"), write(other, "b.yaml")], {"service-name": "s"})
    assert same.args["api-url"] == "http://example/measure"
    clash = other.replace("http://example/measure", "http://elsewhere/")
    error = refused([write(WEB, "a.yaml"), write(clash, "b.yaml")], {"service-name": "s"})
    assert "argument 'api-url' has the value 'http://elsewhere/'" in error.message


def test_an_argument_without_a_value_is_named_and_deployers_own_need_none(write):
    error = refused([write(SUCCESS_RATE)])
    assert error.message == "analysis argument 'service-name' has no value"
    assert error.hint == "--arg service-name=VALUE"
    own = SUCCESS_RATE.replace("service-name", "canary-hash")
    assert t.load([write(own)]).args == {"canary-hash": None}


def test_an_arg_no_template_declares_is_refused(write):
    error = refused([write(SUCCESS_RATE)], {"service-name": "s", "servce": "x"})
    assert "--arg servce: no template declares" in error.message


@pytest.mark.parametrize(("change", "said"), [
    (("    failureLimit: 3\n", "    failureLimit: 3\n    dryRun: true\n"),
     "metric 'success-rate': field 'dryRun' is not supported"),
    (("    failureLimit: 3\n", "    failureLimit: 3\n    scope: all\n"),
     "metric 'success-rate': field 'scope' is not one deployer knows"),
    (("  metrics:\n", "  dryRun:\n  - metricName: x\n  metrics:\n"),
     "spec: field 'dryRun' is not supported (dry-run metrics"),
    (("  - name: service-name\n", "  - name: service-name\n    valueFrom:\n      secretKeyRef:"
                                 "\n        name: s\n        key: k\n"),
     "field 'valueFrom' is not supported"),
    (("      prometheus:\n", "      datadog:\n"), "provider 'datadog' is not supported"),
    (("        query: |\n", "        authentication:\n          sigv4: {}\n        query: |\n"),
     "field 'authentication' is not supported"),
    (("    interval: 5m\n", "    interval: 5 minutes\n"), "interval"),
    (("    failureLimit: 3\n", "    failureLimit: three\n"), "failureLimit is 'three'"),
    (("    failureLimit: 3\n", "    failureLimit: -1\n"), "failureLimit is -1"),
    (("    interval: 5m\n", "    count: 3\n"), "count 3 needs an interval"),
    (("    successCondition: result[0] >= 0.95\n", "    successCondition: 'result[0] >= 0.95 ?"
                                                   " true : false'\n"),
     "successCondition: 'result[0] >= 0.95 ? true : false' is not an expression"),
    (("{{args.service-name}}\",response", "{{args.service}}\",response"),
     "uses {{args.service}}, which the template does not declare"),
    (("kind: AnalysisTemplate", "kind: Rollout"), "deployer reads argoproj.io/v1alpha1"),
    (("        address: http://prometheus.example.com:9090\n", ""),
     "provider.prometheus.address must be a non-empty string"),
])
def test_bad_fields_are_refused_with_the_file_and_field_named(write, change, said):
    old, new = change
    assert old in SUCCESS_RATE
    error = refused([write(SUCCESS_RATE.replace(old, new))], {"service-name": "s"})
    assert said in error.message, error.message
    assert "t.yaml" in error.message


def test_files_that_are_not_templates_are_refused(write, tmp_path):
    assert "cannot read it" in refused([str(tmp_path / "missing.yaml")]).message
    assert "not YAML" in refused([write("a: [")]).message
    assert "holds no template" in refused([write("")]).message
    assert "not a mapping" in refused([write("- a\n")]).message
    web = WEB.replace("        jsonPath:", "        method: DELETE\n        jsonPath:")
    assert "method 'DELETE': GET, POST or PUT" in refused([write(web)],
                                                          {"service-name": "s"}).message


WEB_POST = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: web-post
spec:
  args:
  - name: service-name
  metrics:
  - name: webmetric
    successCondition: result == true
    provider:
      web:
        method: POST # valid values are GET|POST|PUT, defaults to GET
        url: "http://my-server.com/api/v1/measurement?service={{ args.service-name }}"
        timeoutSeconds: 20 # defaults to 10 seconds
        headers:
          - key: Content-Type # if body is a json, it is recommended to set the Content-Type
            value: "application/json"
        body: "{\\"key\\": \\"string value\\"}"
        jsonPath: "{$.data.ok}"
"""


def test_the_documented_web_post_example_loads(write):
    (m,) = t.load([write(WEB_POST)], {"service-name": "hello"}).metrics
    assert m.settings["method"] == "POST" and m.settings["body"] == '{"key": "string value"}'
    assert m.success is not None and m.success.holds(True) and not m.success.holds(False)


@pytest.mark.parametrize(("change", "said"), [
    (("        jsonPath: \"{$.data.ok}\"", "        jsonPath: \"{$.data[}\""), "is not a JSONPath"),
    (("        method: POST", "        method: GET"), "a GET sends no body"),
])
def test_bad_web_fields_are_refused(write, change, said):
    old, new = change
    assert old in WEB_POST
    assert said in refused([write(WEB_POST.replace(old, new))], {"service-name": "s"}).message


def test_the_documented_range_query_and_authentication_are_refused_saying_why(write):
    ranged = SUCCESS_RATE.replace("        timeout: 40\n",
                                  "        rangeQuery:\n          step: 1m\n")
    assert "field 'rangeQuery' is not supported (range queries" in \
        refused([write(ranged)], {"service-name": "s"}).message
    signed = SUCCESS_RATE.replace("        timeout: 40\n",
                                  "        authentication:\n          sigv4:\n"
                                  "            region: eu\n")
    error = refused([write(signed)], {"service-name": "s"})
    assert "field 'authentication' is not supported" in error.message
    assert "Authorization" in error.message
