//! The examples in the docs are real: the configuration reference parses, the policy
//! examples load and their test passes.

use lockgate_core::config::Config;
use lockgate_policy::PolicySet;

fn doc(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../../docs/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The fenced blocks of one language in a Markdown document.
fn blocks(markdown: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}");
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start() == fence => current = Some(String::new()),
            Some(block) if line.trim_start() == "```" => {
                out.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn configuration_reference_parses() {
    let toml = blocks(&doc("configuration.md"), "toml");
    assert_eq!(toml.len(), 1);
    let config = Config::from_toml(&toml[0]).unwrap_or_else(|e| panic!("{e} at line {:?}", e.line));
    assert_eq!(config.review.fallback_reviewers, ["@acme/maintainers"]);
    assert_eq!(config.agents.identity[0].id, "acme-bot");
    // The rules in it compile.
    lockgate_core::assess::Assessor::new(&config).unwrap();
}

#[test]
fn policy_examples_load_and_their_test_passes() {
    let rego = blocks(&doc("policy.md"), "rego");
    assert_eq!(rego.len(), 2);
    let mut set = PolicySet::builtin().unwrap();
    set.add_file("docs/policy.md#team", &rego[0]).unwrap();
    set.add_file("docs/policy.md#test", &rego[1]).unwrap();
    let report = set.run_tests(std::time::Duration::from_secs(5));
    assert!(report.ok(), "{:?}", report.results);
}

#[test]
fn server_configuration_example_parses() {
    let toml = blocks(&doc("server.md"), "toml");
    assert_eq!(toml.len(), 1);
    let registry = lockgate_core::agents::Registry::new(&Default::default()).unwrap();
    let config = lockgate_server::config::ServerConfig::from_toml(&toml[0], &registry)
        .unwrap_or_else(|e| panic!("{e}"));
    let ada = config.person("ada").unwrap();
    assert!(ada.is_owner("@acme/backend") && ada.is_owner("@ada"));
}

#[test]
fn trust_examples_parse_and_load() {
    let text = doc("trust.md");
    let toml = blocks(&text, "toml");
    assert!(toml.len() >= 3);
    for block in &toml {
        let config = Config::from_toml(block).unwrap_or_else(|e| panic!("{e}: {block}"));
        lockgate_core::assess::Assessor::new(&config).unwrap();
    }
    let rego = blocks(&text, "rego");
    assert_eq!(rego.len(), 1);
    let mut set = PolicySet::builtin().unwrap();
    set.add_file("docs/trust.md#team", &rego[0]).unwrap();
}

#[test]
fn merge_queue_configuration_example_parses_and_validates() {
    let toml = blocks(&doc("merge-queue.md"), "toml");
    assert_eq!(toml.len(), 1);
    let registry = lockgate_core::agents::Registry::new(&Default::default()).unwrap();
    let config = lockgate_server::config::ServerConfig::from_toml(&toml[0], &registry)
        .unwrap_or_else(|e| panic!("{e}"));
    config.merge.validate().unwrap_or_else(|e| panic!("{e}"));
    let repo = config.merge.repo("acme/api").unwrap();
    assert_eq!(repo.method(), lockgate_merge::Method::Squash);
    assert_eq!(repo.test, ["sh", "-c", "cargo test --locked"]);
}
