//! `[merge]`: the merge queue's repositories and how their changes land.

use crate::config::ConfigError;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The largest batch: its entries are built, checked and tested as one unit.
pub const MAX_BATCH: usize = 32;

/// `[merge]` in `lockgate-server.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeConfig {
    /// Where the queue keeps its workspaces (a bare repository per queue).
    #[serde(default = "default_workdir")]
    pub workdir: PathBuf,
    /// How often a queue looks for work when nothing wakes it (`2s`).
    #[serde(default = "default_interval")]
    pub interval: String,
    /// How long a replica's claim on a queue lasts without renewal (`30s`): after a
    /// crash, another replica (or the restarted one) takes over once it lapses.
    #[serde(default = "default_lease")]
    pub lease: String,
    /// Where merge and ejection notices go (signed like escalation notices with
    /// `[escalation] secret_file`): the author is told why a change was ejected.
    #[serde(default)]
    pub notify_webhook: Option<String>,
    /// The queues, one per repository.
    #[serde(default, rename = "repo")]
    pub repos: Vec<QueueRepo>,
}

fn default_workdir() -> PathBuf {
    "lockgate-merge".into()
}
fn default_interval() -> String {
    "2s".into()
}
fn default_lease() -> String {
    "30s".into()
}

impl Default for MergeConfig {
    fn default() -> Self {
        MergeConfig {
            workdir: default_workdir(),
            interval: default_interval(),
            lease: default_lease(),
            notify_webhook: None,
            repos: Vec::new(),
        }
    }
}

/// `[[merge.repo]]`: one repository's queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueRepo {
    /// The repository's name, as `lockgate check --server-repo` records it.
    pub name: String,
    /// A git URL or path the server can fetch from and push to.
    pub remote: String,
    /// The protected branch changes land on.
    #[serde(default = "default_target")]
    pub target: String,
    /// `merge` (a merge commit), `squash` or `rebase`.
    #[serde(default = "default_method")]
    pub method: String,
    /// The test command (argv), run in a checkout of the exact result; empty: none.
    /// It runs the change's code: point it at a sandbox (docs/merge-queue.md).
    #[serde(default)]
    pub test: Vec<String>,
    /// Environment variables passed to the test command (it gets no others but PATH,
    /// HOME and LANG: the server's own secrets never reach it).
    #[serde(default)]
    pub test_env: Vec<String>,
    /// How long the test command may run (`30m`).
    #[serde(default = "default_test_timeout")]
    pub test_timeout: String,
    /// Guarded auto-merge: the lowest trust score an `auto_merge` result may land with.
    #[serde(default = "default_min_trust")]
    pub min_trust: u8,
    /// Guarded auto-merge: agent commits need a verified transparency-log inclusion.
    #[serde(default = "default_true")]
    pub require_logged: bool,
    /// Builds per entry before it is ejected (the target kept moving under it).
    #[serde(default = "default_max_builds")]
    pub max_builds: u32,
    /// Land through GitHub's API instead of pushing the protected branch: the
    /// repository there (`owner/name`), reached with `[github]`'s API URL and token.
    /// The result is pushed to `refs/lockgate/queue/<entry>` and the branch moved to it
    /// by a fast-forward-only ref update; the pull request is closed with a comment.
    #[serde(default)]
    pub github: Option<String>,
    /// How many entries are built on one another and tested together (1: one at a
    /// time). A failing batch is bisected: the entries before the first failing one
    /// land, it is ejected, the rest are rebuilt.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// With `github`: GitHub checks (check runs or commit statuses, by name) that must
    /// pass on the result before it lands. The result is pushed to the branch
    /// `lockgate-queue/<entry>` (so push workflows run on it) and the queue waits for
    /// them — instead of, or after, the local `test` command.
    #[serde(default)]
    pub required_checks: Vec<String>,
    /// How long to wait for the required checks (`60m`).
    #[serde(default = "default_checks_timeout")]
    pub checks_timeout: String,
    /// How often to ask GitHub about them (`10s`).
    #[serde(default = "default_checks_poll")]
    pub checks_poll: String,
}

fn default_checks_timeout() -> String {
    "60m".into()
}
fn default_checks_poll() -> String {
    "10s".into()
}

fn default_batch() -> usize {
    1
}

fn default_target() -> String {
    "main".into()
}
fn default_method() -> String {
    "merge".into()
}
fn default_test_timeout() -> String {
    "30m".into()
}
fn default_min_trust() -> u8 {
    70
}
fn default_true() -> bool {
    true
}
fn default_max_builds() -> u32 {
    10
}

impl QueueRepo {
    /// The landing method (validated at start).
    pub fn method(&self) -> lockgate_merge::Method {
        match self.method.as_str() {
            "squash" => lockgate_merge::Method::Squash,
            "rebase" => lockgate_merge::Method::Rebase,
            _ => lockgate_merge::Method::Merge,
        }
    }

    /// The test timeout (validated at start).
    pub fn test_timeout(&self) -> Duration {
        humantime::parse_duration(&self.test_timeout).unwrap_or(Duration::from_secs(1800))
    }

    /// How long to wait for required checks (validated at start).
    pub fn checks_timeout(&self) -> Duration {
        humantime::parse_duration(&self.checks_timeout).unwrap_or(Duration::from_secs(3600))
    }

    /// How often to poll them (validated at start).
    pub fn checks_poll(&self) -> Duration {
        humantime::parse_duration(&self.checks_poll).unwrap_or(Duration::from_secs(10))
    }
}

impl MergeConfig {
    /// The scan interval (validated at start).
    pub fn interval(&self) -> Duration {
        humantime::parse_duration(&self.interval).unwrap_or(Duration::from_secs(2))
    }

    /// The lease (validated at start).
    pub fn lease(&self) -> Duration {
        humantime::parse_duration(&self.lease).unwrap_or(Duration::from_secs(30))
    }

    /// The queue of `repo`, when it has one.
    pub fn repo(&self, name: &str) -> Option<&QueueRepo> {
        self.repos.iter().find(|r| r.name == name)
    }

    /// Checks every setting; the error names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let duration = |field: &str, v: &str, min: Duration| {
            let d = humantime::parse_duration(v)
                .map_err(|e| ConfigError(format!("merge.{field} {v:?}: {e}")))?;
            if d < min {
                return Err(ConfigError(format!("merge.{field} below {min:?}")));
            }
            Ok(d)
        };
        let interval = duration("interval", &self.interval, Duration::from_millis(50))?;
        let lease = duration("lease", &self.lease, Duration::from_millis(500))?;
        if lease <= interval {
            return Err(ConfigError(
                "merge.lease must be longer than merge.interval".into(),
            ));
        }
        if let Some(url) = &self.notify_webhook
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError(
                "merge.notify_webhook must be an http(s) URL".into(),
            ));
        }
        for (i, r) in self.repos.iter().enumerate() {
            let at = format!("merge.repo[{i}] ({})", r.name);
            if r.name.is_empty() || r.remote.is_empty() {
                return Err(ConfigError(format!("{at}: name and remote are required")));
            }
            if self.repos[..i].iter().any(|o| o.name == r.name) {
                return Err(ConfigError(format!(
                    "{at}: a second queue for one repository"
                )));
            }
            if !matches!(r.method.as_str(), "merge" | "squash" | "rebase") {
                return Err(ConfigError(format!(
                    "{at}: method {:?} is not merge, squash or rebase",
                    r.method
                )));
            }
            if r.min_trust > 100 {
                return Err(ConfigError(format!("{at}: min_trust is 0–100")));
            }
            if !(1..=MAX_BATCH).contains(&r.batch) {
                return Err(ConfigError(format!("{at}: batch is 1–{MAX_BATCH}")));
            }
            if r.max_builds == 0 {
                return Err(ConfigError(format!("{at}: max_builds must be at least 1")));
            }
            duration("test_timeout", &r.test_timeout, Duration::from_secs(1))?;
            if let Some(gh) = &r.github
                && !gh
                    .split_once('/')
                    .is_some_and(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
            {
                return Err(ConfigError(format!(
                    "{at}: github {gh:?} is not owner/name"
                )));
            }
            if !r.required_checks.is_empty() && r.github.is_none() {
                return Err(ConfigError(format!(
                    "{at}: required_checks are GitHub checks: set github = \"owner/name\""
                )));
            }
            if r.required_checks
                .iter()
                .any(|c| c.is_empty() || c.len() > 256)
            {
                return Err(ConfigError(format!("{at}: a required check has no name")));
            }
            duration("checks_timeout", &r.checks_timeout, Duration::from_secs(1))?;
            duration("checks_poll", &r.checks_poll, Duration::from_millis(50))?;
            if r.test.first().is_some_and(|p| p.is_empty()) {
                return Err(ConfigError(format!("{at}: test program is empty")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MergeConfig, String> {
        let c: MergeConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.0)?;
        Ok(c)
    }

    #[test]
    fn defaults_are_safe_and_mistakes_are_named() {
        let c = parse("[[repo]]\nname = \"acme/app\"\nremote = \"/srv/app.git\"\n").unwrap();
        let r = &c.repos[0];
        assert_eq!(
            (r.target.as_str(), r.method()),
            ("main", lockgate_merge::Method::Merge)
        );
        assert!(
            r.require_logged,
            "guarded auto-merge wants logged provenance by default"
        );
        assert_eq!(r.min_trust, 70);
        assert!(r.test.is_empty());
        for (bad, says) in [
            ("method = \"octopus\"", "not merge, squash or rebase"),
            ("min_trust = 101", "0–100"),
            ("max_builds = 0", "at least 1"),
            ("test_timeout = \"soon\"", "test_timeout"),
            ("test = [\"\"]", "test program is empty"),
            ("github = \"acme\"", "not owner/name"),
            ("batch = 0", "batch is 1–32"),
            ("required_checks = [\"ci\"]", "set github"),
        ] {
            let text = format!("[[repo]]\nname = \"a\"\nremote = \"/r\"\n{bad}\n");
            let err = parse(&text).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let err = parse("interval = \"5s\"\nlease = \"5s\"\n").unwrap_err();
        assert!(err.contains("longer than"), "{err}");
        let twice =
            "[[repo]]\nname = \"a\"\nremote = \"/r\"\n[[repo]]\nname = \"a\"\nremote = \"/s\"\n";
        assert!(parse(twice).unwrap_err().contains("second queue"));
        assert!(
            parse("notify_webhook = \"file:///x\"")
                .unwrap_err()
                .contains("http")
        );
    }
}
