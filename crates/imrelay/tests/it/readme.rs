//! The README's config examples are tested: every `toml` block must parse as
//! what it claims to be (a destination, a mock config, or a gateway config).

fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.push(current.take().unwrap()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

#[test]
fn readme_toml_examples_are_valid() {
    let readme = include_str!("../../../../README.md");
    let blocks = toml_blocks(readme);
    assert!(blocks.len() >= 2, "expected toml examples in the README");
    let client = imrelay_sdk::Client::new().unwrap();
    let mut checked = 0;
    for block in &blocks {
        let table: toml::Table = toml::from_str(block)
            .unwrap_or_else(|e| panic!("README toml block does not parse: {e}\n{block}"));
        if table.contains_key("type") {
            let json = serde_json::to_value(&table).unwrap();
            client
                .build(&json)
                .unwrap_or_else(|e| panic!("README destination example is invalid: {e}\n{block}"));
            checked += 1;
        } else if table.contains_key("channels") || table.contains_key("server") {
            // A gateway config: validated completely, every destination built.
            let dir = std::env::temp_dir()
                .join(format!("imrelay-readme-{}-{checked}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("imrelay.toml");
            std::fs::write(&path, block).unwrap();
            imrelay_gateway::check_file(&path)
                .unwrap_or_else(|e| panic!("README gateway example is invalid: {e}\n{block}"));
            checked += 1;
        } else if table.contains_key("robots")
            || table.contains_key("apps")
            || table.contains_key("window_scale")
        {
            imrelay_mock::MockConfig::from_toml(block)
                .unwrap_or_else(|e| panic!("README mock example is invalid: {e}\n{block}"));
            checked += 1;
        } else if table.keys().all(|k| k == "templates") {
            // Template tables alone (their files are the reader's): each
            // entry must be a valid `[templates.NAME]`.
            let templates = table["templates"].as_table().unwrap();
            for (name, t) in templates {
                let t: imrelay_gateway::alertmanager::config::TemplateConfig =
                    t.clone().try_into().unwrap_or_else(|e| {
                        panic!("README template `{name}` is invalid: {e}\n{block}")
                    });
                assert!(t.file.is_some() || t.source.is_some(), "{block}");
            }
            checked += 1;
        } else {
            panic!("README toml block of unknown kind (teach this test about it):\n{block}");
        }
    }
    assert_eq!(checked, blocks.len());
}

#[test]
fn example_mock_config_is_valid() {
    let text = include_str!("../../../../examples/mock.toml");
    let cfg = imrelay_mock::MockConfig::from_toml(text).unwrap();
    assert!(cfg.robots.iter().any(|r| r.secret.is_some()));
}

#[test]
fn example_gateway_configs_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let summary = imrelay_gateway::check_file(format!("{dir}/quickstart.toml")).unwrap();
    assert!(summary.channels.contains_key("alerts"));
}

#[test]
fn readme_test_command_is_what_ci_runs() {
    let readme = include_str!("../../../../README.md");
    let ci = include_str!("../../../../.ci/run");
    let tests_run = include_str!("../../../../tests/run");
    let cmd = "bash tests/run";
    // The README's test command is the first sh block after "Run the tests".
    let after = &readme[readme
        .find("Run the tests")
        .expect("README names the test command")..];
    let block = after
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    assert_eq!(block.trim(), cmd);
    assert!(
        ci.contains(cmd),
        ".ci/run must call the README's test command"
    );
    assert!(tests_run.contains("cargo test --workspace --locked"));
}
