"""The API requests a command sent: in its JSON report, and as the -v trace's last line."""

import json

from deployer import cli


def test_the_json_report_and_the_trace_end_with_the_requests_sent(cli_cluster, monkeypatch,
                                                                   capsys):
    connected = []

    def connect(g, **kw):
        cli._CONNECTED.append(cli_cluster)  # as the real _connect records its gateway
        connected.append(cli_cluster)
        for path in ("/apis/apps/v1/namespaces/test/deployments/hello",
                     "/api/v1/namespaces/test/pods/hello-1:8080/proxy/version"):
            cli_cluster.requests.add(path)
        return cli_cluster

    monkeypatch.setattr(cli, "_connect", connect)
    code = cli.run(["-v", "-o", "json", "rolling", "--app", "hello", "--image", "v2",
                    "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 0 and connected, err
    assert json.loads(out)["apiRequests"] == {"api": 1, "podProxy": 1}
    last = err.strip().splitlines()[-1]
    assert "api requests sent" in last and "api=1" in last and "podProxy=1" in last, err
    assert cli._CONNECTED == [], "counted once, for this command"


def test_without_a_cluster_nothing_is_said_about_requests(capsys):
    code = cli.run(["-v", "rolling", "--app", "Bad_Name", "--image", "v2"])
    assert code == 2
    assert "api requests sent" not in capsys.readouterr().err
