//! Dependency deltas from lockfiles: which packages a session added, removed or moved
//! to another version.
//!
//! Read formats: `Cargo.lock`, `package-lock.json` / `npm-shrinkwrap.json` (v1–v3),
//! `go.sum`, `poetry.lock`, `uv.lock`, pinned `requirements*.txt` (`name==version`).

use crate::predicate::{DependencyDelta, Package, PackageChange};
use std::collections::{BTreeMap, BTreeSet};

/// Largest lockfile read.
pub const MAX_LOCKFILE_BYTES: usize = 64 * 1024 * 1024;

/// Packages by (ecosystem, name), with every version present.
pub type PackageSet = BTreeMap<(String, String), BTreeSet<String>>;

/// Whether Lockgate can read this path as a lockfile.
pub fn is_lockfile(path: &str) -> bool {
    lockfile_kind(path).is_some()
}

#[derive(Clone, Copy)]
enum Kind {
    Cargo,
    Npm,
    GoSum,
    PoetryOrUv,
    Requirements,
}

fn lockfile_kind(path: &str) -> Option<Kind> {
    let name = path.rsplit('/').next().unwrap_or(path);
    Some(match name {
        "Cargo.lock" => Kind::Cargo,
        "package-lock.json" | "npm-shrinkwrap.json" => Kind::Npm,
        "go.sum" => Kind::GoSum,
        "poetry.lock" | "uv.lock" => Kind::PoetryOrUv,
        n if n.starts_with("requirements") && n.ends_with(".txt") => Kind::Requirements,
        _ => return None,
    })
}

/// Packages in a lockfile as (ecosystem, name) → set of versions. `None` if the path is
/// not a lockfile Lockgate reads; an error if it is one but does not parse.
pub fn packages(path: &str, bytes: &[u8]) -> Option<Result<PackageSet, String>> {
    let kind = lockfile_kind(path)?;
    if bytes.len() > MAX_LOCKFILE_BYTES {
        return Some(Err(format!(
            "{path}: larger than {MAX_LOCKFILE_BYTES} bytes"
        )));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => return Some(Err(format!("{path}: not UTF-8: {e}"))),
    };
    let mut out: PackageSet = BTreeMap::new();
    let mut add = |eco: &str, name: &str, version: &str| {
        if !name.is_empty() && !version.is_empty() {
            out.entry((eco.to_string(), name.to_string()))
                .or_default()
                .insert(version.to_string());
        }
    };
    let result: Result<(), String> = (|| {
        match kind {
            Kind::Cargo | Kind::PoetryOrUv => {
                let eco = if matches!(kind, Kind::Cargo) {
                    "cargo"
                } else {
                    "pypi"
                };
                let doc: toml::Value = toml::from_str(text).map_err(|e| e.message().to_string())?;
                for p in doc
                    .get("package")
                    .and_then(|p| p.as_array())
                    .into_iter()
                    .flatten()
                {
                    let name = p.get("name").and_then(|v| v.as_str()).unwrap_or_default();
                    let version = p
                        .get("version")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default();
                    add(eco, name, version);
                }
            }
            Kind::Npm => {
                let doc: serde_json::Value =
                    serde_json::from_str(text).map_err(|e| e.to_string())?;
                if let Some(pkgs) = doc.get("packages").and_then(|p| p.as_object()) {
                    for (key, p) in pkgs {
                        let Some(name) = key
                            .rsplit("node_modules/")
                            .next()
                            .filter(|_| !key.is_empty())
                        else {
                            continue; // "" is the root project
                        };
                        let version = p
                            .get("version")
                            .and_then(|v| v.as_str())
                            .unwrap_or_default();
                        add("npm", name, version);
                    }
                } else if let Some(deps) = doc.get("dependencies").and_then(|p| p.as_object()) {
                    // lockfileVersion 1: nested "dependencies".
                    let mut stack: Vec<&serde_json::Map<String, serde_json::Value>> = vec![deps];
                    while let Some(map) = stack.pop() {
                        for (name, p) in map {
                            let version = p
                                .get("version")
                                .and_then(|v| v.as_str())
                                .unwrap_or_default();
                            add("npm", name, version);
                            if let Some(nested) = p.get("dependencies").and_then(|d| d.as_object())
                            {
                                stack.push(nested);
                            }
                        }
                    }
                }
            }
            Kind::GoSum => {
                for line in text.lines() {
                    let mut parts = line.split_whitespace();
                    let (Some(module), Some(version)) = (parts.next(), parts.next()) else {
                        continue;
                    };
                    if version.ends_with("/go.mod") {
                        continue;
                    }
                    add("go", module, version);
                }
            }
            Kind::Requirements => {
                for line in text.lines() {
                    let line = line.split('#').next().unwrap_or_default().trim();
                    let line = line.split(';').next().unwrap_or_default().trim();
                    if let Some((name, version)) = line.split_once("==") {
                        let name = name.split('[').next().unwrap_or(name).trim().to_lowercase();
                        add("pypi", &name, version.trim());
                    }
                }
            }
        }
        Ok(())
    })();
    Some(result.map(|_| out).map_err(|e| format!("{path}: {e}")))
}

/// Compares package sets (possibly from several lockfiles) before and after.
pub fn delta(before: &PackageSet, after: &PackageSet, lockfiles: Vec<String>) -> DependencyDelta {
    let mut d = DependencyDelta {
        lockfiles,
        ..DependencyDelta::default()
    };
    for ((eco, name), versions) in after {
        match before.get(&(eco.clone(), name.clone())) {
            None => d.added.extend(versions.iter().map(|v| Package {
                ecosystem: eco.clone(),
                name: name.clone(),
                version: v.clone(),
            })),
            Some(old) if old != versions => d.changed.push(PackageChange {
                ecosystem: eco.clone(),
                name: name.clone(),
                from: old.iter().cloned().collect::<Vec<_>>().join(","),
                to: versions.iter().cloned().collect::<Vec<_>>().join(","),
            }),
            Some(_) => {}
        }
    }
    for ((eco, name), versions) in before {
        if !after.contains_key(&(eco.clone(), name.clone())) {
            d.removed.extend(versions.iter().map(|v| Package {
                ecosystem: eco.clone(),
                name: name.clone(),
                version: v.clone(),
            }));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pk(path: &str, text: &str) -> PackageSet {
        packages(path, text.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn reads_each_format() {
        let cargo = pk(
            "Cargo.lock",
            "version = 4\n[[package]]\nname = \"serde\"\nversion = \"1.0.200\"\n[[package]]\nname = \"acme\"\nversion = \"0.1.0\"\n",
        );
        assert!(cargo[&("cargo".into(), "serde".into())].contains("1.0.200"));
        let npm = pk(
            "web/package-lock.json",
            r#"{"lockfileVersion":3,"packages":{"":{"name":"web"},"node_modules/left-pad":{"version":"1.3.0"},"node_modules/a/node_modules/b":{"version":"2.0.0"}}}"#,
        );
        assert_eq!(npm.len(), 2);
        assert!(npm.contains_key(&("npm".into(), "b".into())));
        let npm1 = pk(
            "package-lock.json",
            r#"{"lockfileVersion":1,"dependencies":{"x":{"version":"1.0.0","dependencies":{"y":{"version":"2.0.0"}}}}}"#,
        );
        assert_eq!(npm1.len(), 2);
        let go = pk(
            "go.sum",
            "golang.org/x/text v0.14.0 h1:abc=\ngolang.org/x/text v0.14.0/go.mod h1:def=\n",
        );
        assert_eq!(go.len(), 1);
        let py = pk(
            "requirements-dev.txt",
            "# tools\nRequests[socks]==2.31.0 ; python_version>'3'\nflask>=2\n",
        );
        assert!(py[&("pypi".into(), "requests".into())].contains("2.31.0"));
        assert_eq!(py.len(), 1);
        assert!(packages("src/main.rs", b"").is_none());
        assert!(packages("Cargo.lock", b"[[package]\n").unwrap().is_err());
    }

    #[test]
    fn computes_added_removed_changed() {
        let before = pk(
            "Cargo.lock",
            "[[package]]\nname = \"a\"\nversion = \"1.0.0\"\n[[package]]\nname = \"b\"\nversion = \"1.0.0\"\n",
        );
        let after = pk(
            "Cargo.lock",
            "[[package]]\nname = \"a\"\nversion = \"1.1.0\"\n[[package]]\nname = \"c\"\nversion = \"0.1.0\"\n",
        );
        let d = delta(&before, &after, vec!["Cargo.lock".into()]);
        assert_eq!(d.added[0].name, "c");
        assert_eq!(d.removed[0].name, "b");
        assert_eq!(
            (d.changed[0].from.as_str(), d.changed[0].to.as_str()),
            ("1.0.0", "1.1.0")
        );
    }
}
