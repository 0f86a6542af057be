//! Moving from PrometheusAlert (PA): `imrelay import prometheusalert` on an
//! app.conf and templates written after PA's documented formats
//! (tests/fixtures/prometheusalert), then `config check`, then PA's
//! `/prometheusalert?type=..&tpl=..&ddurl=..` URLs, unchanged, deliver at the
//! mock what Go renders from the same templates with PA's functions.

use std::path::PathBuf;

use crate::migrate_pwd::{
    assert_config_check, fixture, go_render, imrelay, mock_sends, notification, pointed_at_mock,
    serve_with_env, text,
};
use crate::serve_support::{free_port, Scratch};

const PA_ENV: &[(&str, &str)] = &[
    ("PA_DINGTALK_ACCESS_TOKEN", "pa-dd-token"),
    ("PA_DINGTALK_SECRET", "SECpadd"),
    ("PA_WECOM_KEY", "pa-wx-key"),
    (
        "IMRELAY_ALERTMANAGER_KEY",
        "migrate-pa-key-0123456789abcdef",
    ),
];

fn import_pa(dir: &Scratch, templates: &str) -> (PathBuf, String) {
    let out_file = dir.path("imrelay.toml");
    let conf = fixture("prometheusalert/app.conf");
    let tpl = fixture(templates);
    let out = imrelay(
        &[
            "import",
            "prometheusalert",
            conf.to_str().unwrap(),
            "--templates",
            tpl.to_str().unwrap(),
            "-o",
            out_file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "import failed: {}", text(&out.stderr));
    (out_file, text(&out.stderr))
}

#[test]
fn pa_import_maps_robots_and_templates_and_lists_the_rest() {
    let dir = Scratch::new("import-pa");
    let (file, stderr) = import_pa(&dir, "prometheusalert/templates");
    let toml = std::fs::read_to_string(&file).unwrap();
    for secret in ["pa-dd-token", "SECpadd", "pa-wx-key"] {
        assert!(!toml.contains(secret), "{secret} inlined:\n{toml}");
    }
    for line in [
        "app.conf:22: `messagelevel`",
        "app.conf:30: `dd_isatall=1`",
        "app.conf:46: `open-txdx=1`",
    ] {
        assert!(stderr.contains(line), "{line} not listed:\n{stderr}");
    }
    let v: toml::Table = toml::from_str(&toml).unwrap();
    assert_eq!(v["compat"]["prometheusalert"].as_bool(), Some(true));
    assert_eq!(
        v["compat"]["prometheusalert_defaults"]["dd"].as_str(),
        Some("pa-dingtalk")
    );
    // open-feishu=0: no channel.
    assert!(v["channels"].get("pa-feishu").is_none());
    assert_eq!(
        v["templates"]["prometheus-dd"]["engine"].as_str(),
        Some("go-prometheusalert")
    );
    assert_config_check(&file, PA_ENV);
    // The template table export works the same.
    let dir = Scratch::new("import-pa-json");
    let (file, _) = import_pa(&dir, "prometheusalert/templates.json");
    assert_config_check(&file, PA_ENV);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pa_urls_deliver_what_go_renders_with_pas_functions() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = Scratch::new("import-pa-serve");
    let (file, _) = import_pa(&dir, "prometheusalert/templates");
    // Add the exported table's WeCom template to the same config.
    let json_dir = Scratch::new("import-pa-json2");
    let (json_file, _) = import_pa(&json_dir, "prometheusalert/templates.json");
    let json_toml = std::fs::read_to_string(json_file).unwrap();
    let wx_template = &json_toml[json_toml.find("[templates.prometheus-wx]").unwrap()..];
    let toml = format!("{}\n{wx_template}", std::fs::read_to_string(&file).unwrap());
    let (port, mock_port) = (free_port(), free_port());
    let runnable = dir.path("run.toml");
    std::fs::write(
        &runnable,
        pointed_at_mock(
            &toml,
            port,
            mock_port,
            &dir.path("q.db"),
            &[
                ("dingtalk", "pa-dd-token", Some("SECpadd")),
                ("wecom", "pa-wx-key", None),
            ],
        ),
    )
    .unwrap();
    assert_config_check(&runnable, PA_ENV);
    let serve = serve_with_env(&runnable, port, dir.path("imrelay.log"), PA_ENV).await;
    let key = PA_ENV.last().unwrap().1;
    let http = reqwest::Client::new();
    // PA's URLs as Alertmanager had them (the signing secret rides along, unused), plus the key.
    for query in [
        "type=dd&tpl=prometheus-dd&ddurl=https://oapi.dingtalk.com/robot/send?access_token=pa-dd-token&secret=SECpadd&at=13800000009",
        "type=wx&tpl=prometheus-wx&wxurl=https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=pa-wx-key",
    ] {
        let r = http
            .post(format!("{}/prometheusalert?{query}&token={key}", serve.server()))
            .json(&notification())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{query}: {}", r.text().await.unwrap());
    }
    let mock = format!("http://127.0.0.1:{mock_port}");
    let data = dir.path("notification.json");
    std::fs::write(&data, notification().to_string()).unwrap();

    let dd = mock_sends(&mock, "dingtalk:robot:pa-dd-token", 1, &serve).await;
    let want = go_render(
        "pa",
        &fixture("prometheusalert/templates/prometheus-dd.tmpl"),
        &data,
        None,
        "UTC",
    );
    assert_eq!(dd[0]["markdown"]["title"], "PrometheusAlert");
    assert_eq!(
        dd[0]["markdown"]["text"].as_str().unwrap(),
        format!("{}\n\n@13800000009", want.trim())
    );

    let wx = mock_sends(&mock, "wecom:robot:pa-wx-key", 1, &serve).await;
    let rows: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("prometheusalert/templates.json")).unwrap(),
    )
    .unwrap();
    let tpl = dir.path("prometheus-wx.tmpl");
    std::fs::write(&tpl, rows[0]["tpl"].as_str().unwrap()).unwrap();
    let want = go_render("pa", &tpl, &data, None, "UTC");
    assert_eq!(wx[0]["markdown"]["content"].as_str().unwrap(), want.trim());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robots_named_in_alertmanager_urls_become_channels_and_those_urls_work() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = Scratch::new("import-pa-am");
    let out_file = dir.path("imrelay.toml");
    let am = fixture("prometheusalert/alertmanager.yml");
    let out = imrelay(
        &[
            "import",
            "prometheusalert",
            fixture("prometheusalert/app.conf").to_str().unwrap(),
            "--templates",
            fixture("prometheusalert/templates.json").to_str().unwrap(),
            "--alertmanager",
            am.to_str().unwrap(),
            "-o",
            out_file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    // The ops receiver's robot is app.conf's: no second channel for it.
    assert!(stderr.contains("PA_DINGTALK_2_ACCESS_TOKEN"), "{stderr}");
    assert!(stderr.contains("alertmanager.yml (line 14)"), "{stderr}");
    assert!(!stderr.contains("PA_DINGTALK_3"), "{stderr}");
    let toml = std::fs::read_to_string(&out_file).unwrap();
    assert!(
        !toml.contains("db-dd-token") && !toml.contains("db-wx-key"),
        "{toml}"
    );
    let env: Vec<(&str, &str)> = PA_ENV
        .iter()
        .copied()
        .chain([
            ("PA_DINGTALK_2_ACCESS_TOKEN", "db-dd-token"),
            ("PA_WECOM_2_KEY", "db-wx-key"),
        ])
        .collect();
    assert_config_check(&out_file, &env);
    let (port, mock_port) = (free_port(), free_port());
    let runnable = dir.path("run.toml");
    std::fs::write(
        &runnable,
        pointed_at_mock(&toml, port, mock_port, &dir.path("q.db"), &[]),
    )
    .unwrap();
    let serve = serve_with_env(&runnable, port, dir.path("imrelay.log"), &env).await;
    let key = PA_ENV.last().unwrap().1;
    let http = reqwest::Client::new();
    // Alertmanager's URLs as they were, with the key added and the host ours
    // (and the table export's template: prometheus-dd is a file, imported in the test above).
    let yaml = std::fs::read_to_string(&am).unwrap();
    for line in yaml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- url: "))
    {
        let url = line
            .trim_matches('"')
            .replace("tpl=prometheus-dd", "tpl=prometheus-wx");
        let path = &url[url.find("/prometheusalert?").unwrap()..];
        let r = http
            .post(format!("{}{path}&key={key}", serve.server()))
            .json(&notification())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap());
    }
    let mock = format!("http://127.0.0.1:{mock_port}");
    for target in [
        "dingtalk:robot:pa-dd-token",
        "dingtalk:robot:db-dd-token",
        "wecom:robot:db-wx-key",
    ] {
        mock_sends(&mock, target, 1, &serve).await;
    }
}
