//! Property tests: the regex-based CODEOWNERS matcher agrees with an independent,
//! deliberately naive segment-by-segment backtracking matcher on random patterns and
//! paths; plus invariants of CODEOWNERS resolution.

use lockgate_core::codeowners::CodeOwners;
use lockgate_core::pattern::PathPattern;
use proptest::prelude::*;

/// Reference semantics, written from GitHub's documentation and the hmarr vectors
/// without looking at the regex translation.
fn reference_match(pattern: &str, path: &str) -> bool {
    let anchored = pattern.starts_with('/');
    let body = pattern.trim_start_matches('/');
    let dir_only = body.ends_with('/');
    let body = body.trim_end_matches('/');
    let mut segs: Vec<&str> = body.split('/').collect();
    if !anchored && segs.len() == 1 && segs[0] != "**" {
        segs.insert(0, "**");
    }
    if dir_only {
        segs.push("**");
    }
    let path_segs: Vec<&str> = path.split('/').collect();
    let last = *segs.last().unwrap();
    // A final literal-ish segment also matches everything below it.
    let descendants = last != "*" && last != "**";
    (0..=path_segs.len()).any(|k| {
        let prefix_ok = match_segments(&segs, &path_segs[..k]);
        prefix_ok && (k == path_segs.len() || (descendants && k > 0))
    })
}

/// Whether `pattern` segments match exactly `path` segments. `**` matches zero or more
/// segments, except at the end where it matches one or more.
fn match_segments(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => {
            let min = usize::from(rest.is_empty());
            (min..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((seg, rest)) => match path.split_first() {
            Some((p, tail)) => glob(seg.as_bytes(), p.as_bytes()) && match_segments(rest, tail),
            None => false,
        },
    }
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("ab".to_string()),
        Just("*".to_string()),
        Just("**".to_string()),
        Just("a*".to_string()),
        Just("*b".to_string()),
        Just("?".to_string()),
        Just("a?".to_string()),
    ]
}

fn pattern() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec(segment(), 1..4),
        any::<bool>(),
    )
        .prop_filter_map("no *** runs", |(lead, segs, trail)| {
            let mut p = String::new();
            if lead {
                p.push('/');
            }
            p.push_str(&segs.join("/"));
            if trail {
                p.push('/');
            }
            (!p.contains("***") && p != "/" && !p.contains("**/**")).then_some(p)
        })
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("ab"),
            Just("ba"),
            Just("c"),
            Just("abb")
        ],
        1..5,
    )
    .prop_map(|s| s.join("/"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn matcher_agrees_with_reference(pattern in pattern(), path in path()) {
        let ours = PathPattern::new(&pattern).unwrap().is_match(&path);
        prop_assert_eq!(ours, reference_match(&pattern, &path), "pattern {:?} path {:?}", pattern, path);
    }

    #[test]
    fn anchored_patterns_never_match_below_another_root(segs in prop::collection::vec("[a-c]{1,3}", 1..3), path in path()) {
        let pattern = format!("/{}", segs.join("/"));
        let p = PathPattern::new(&pattern).unwrap();
        if p.is_match(&path) {
            let root = segs.join("/");
            let below = format!("{root}/");
            prop_assert!(path == root || path.starts_with(&below));
        }
    }

    #[test]
    fn last_matching_rule_wins(paths in prop::collection::vec(path(), 1..10), n in 1usize..5) {
        // n rules that all match everything: the last one's owner always wins.
        let text: String = (0..n).map(|i| format!("* @org/team{i}\n")).collect();
        let owners = CodeOwners::parse(&text);
        for p in &paths {
            let expected = format!("@org/team{}", n - 1);
            prop_assert_eq!(owners.owners_of(p), [expected]);
        }
    }
}

#[test]
fn reference_agrees_with_documented_examples() {
    assert!(reference_match("docs/*", "docs/a.md"));
    assert!(!reference_match("docs/*", "docs/x/a.md"));
    assert!(reference_match("/build/logs/", "build/logs/x"));
    assert!(reference_match("*.js", "a/b.js"));
    assert!(!reference_match("/*", "a/b"));
    assert!(reference_match("foo/**/bar", "foo/bar"));
}

fn literal_heavy_pattern() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        Just("a"),
        Just("b"),
        Just("ab"),
        Just("a.b"),
        Just("*.b"),
        Just("a*"),
        Just("*"),
        Just("**"),
        Just("?b"),
        Just("*b"),
        Just("b.a"),
    ];
    (
        any::<bool>(),
        prop::collection::vec(seg, 1..4),
        any::<bool>(),
    )
        .prop_filter_map("valid", |(lead, segs, trail)| {
            let mut p = String::new();
            if lead {
                p.push('/');
            }
            p.push_str(&segs.join("/"));
            if trail {
                p.push('/');
            }
            (!p.contains("***") && !p.contains("**/**") && p != "/").then_some(p)
        })
}

fn dotted_path() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("ab"),
            Just("a.b"),
            Just("b.a"),
            Just("c.b"),
            Just("ba")
        ],
        1..5,
    )
    .prop_map(|s| s.join("/"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The literal strategies of `PatternSet` agree with each pattern's own regex.
    #[test]
    fn pattern_set_agrees_with_single_patterns(
        patterns in prop::collection::vec(literal_heavy_pattern(), 1..12),
        path in dotted_path(),
    ) {
        let set = lockgate_core::pattern::PatternSet::new(&patterns).unwrap();
        let expected: Vec<usize> = patterns
            .iter()
            .enumerate()
            .filter(|(_, p)| PathPattern::new(p).unwrap().is_match(&path))
            .map(|(i, _)| i)
            .collect();
        prop_assert_eq!(set.matches(&path), expected, "patterns {:?} path {:?}", patterns, path);
    }
}
