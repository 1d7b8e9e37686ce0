//! `lockgate token`: issue with the gateway key, narrow without it, inspect and verify,
//! revoke in the ledger — through the real binary.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn lockgate(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockgate"))
        .current_dir(dir)
        .args(args)
        .env_remove("LOCKGATE_GATEWAY_KEY_FILE")
        .env_remove("LOCKGATE_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn issue_narrow_inspect_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("gateway.key"), [7u8; 32]).unwrap();
    std::fs::write(d.join("other.key"), [8u8; 32]).unwrap();

    let issued = lockgate(
        d,
        &[
            "token",
            "issue",
            "--key-file",
            "gateway.key",
            "--agent",
            "claude-code",
            "--project",
            "acme/api",
            "--ttl",
            "2h",
            "--model",
            "claude-*",
            "--max-spend",
            "5",
        ],
        "",
    );
    let credential = ok(&issued);
    let summary = String::from_utf8_lossy(&issued.stderr);
    assert!(credential.trim().starts_with("lgc_"), "{credential}");
    assert_eq!(
        credential.trim().lines().count(),
        1,
        "stdout holds only the credential"
    );
    assert!(
        summary.contains("claude-*") && summary.contains("$5.00"),
        "{summary}"
    );

    // Narrowed offline (no key), read from stdin.
    let narrowed = ok(&lockgate(
        d,
        &[
            "token",
            "attenuate",
            "--model",
            "claude-3-5-haiku",
            "--model",
            "gpt-4o",
            "--task-class",
            "tests",
            "--max-spend",
            "0.50",
            "--ttl",
            "10m",
        ],
        &credential,
    ));
    let inspected = ok(&lockgate(
        d,
        &[
            "token",
            "inspect",
            "--key-file",
            "gateway.key",
            "--format",
            "json",
        ],
        &narrowed,
    ));
    let scope: serde_json::Value = serde_json::from_str(&inspected).unwrap();
    assert_eq!(scope["verified"], true);
    assert_eq!(scope["agent"], "claude-code");
    // gpt-4o was never allowed: narrowing cannot add it.
    assert_eq!(scope["models"], serde_json::json!(["claude-3-5-haiku"]));
    assert_eq!(scope["task_classes"], serde_json::json!(["tests"]));
    assert_eq!(
        scope["spend_caps_micros"],
        serde_json::json!([5_000_000, 500_000])
    );
    let id = scope["id"].as_str().unwrap().to_string();

    // Another key, or an edited credential, does not verify.
    let wrong = lockgate(
        d,
        &["token", "inspect", "--key-file", "other.key"],
        &narrowed,
    );
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("signature"));
    let mut doc: serde_json::Value = {
        use base64::Engine;
        let body = narrowed.trim().strip_prefix("lgc_").unwrap();
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .unwrap();
        serde_json::from_slice(&json).unwrap()
    };
    doc["caveats"].as_array_mut().unwrap().pop();
    let forged = {
        use base64::Engine;
        format!(
            "lgc_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(&doc).unwrap())
        )
    };
    let out = lockgate(
        d,
        &["token", "inspect", "--key-file", "gateway.key"],
        &forged,
    );
    assert!(!out.status.success(), "a dropped caveat must not verify");
    // Without the key, inspect says it did not check.
    let unchecked = ok(&lockgate(d, &["token", "inspect"], &narrowed));
    assert!(unchecked.contains("not checked"), "{unchecked}");

    // Bad input is refused with a reason, and the credential is never echoed.
    std::fs::write(d.join("short.key"), b"too short").unwrap();
    let short = lockgate(
        d,
        &[
            "token",
            "issue",
            "--key-file",
            "short.key",
            "--agent",
            "a",
            "--project",
            "p",
        ],
        "",
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 32"));
    let long = lockgate(
        d,
        &[
            "token",
            "issue",
            "--key-file",
            "gateway.key",
            "--agent",
            "a",
            "--project",
            "p",
            "--ttl",
            "30d",
        ],
        "",
    );
    assert!(!long.status.success());
    let nothing = lockgate(d, &["token", "attenuate"], &credential);
    assert!(!nothing.status.success());
    assert!(!String::from_utf8_lossy(&nothing.stderr).contains(credential.trim()));

    // Revocation lands in the ledger.
    let url = format!("sqlite://{}", d.join("ledger.db").display());
    let revoked = ok(&lockgate(
        d,
        &[
            "token",
            "revoke",
            &id,
            "--by",
            "ada",
            "--database-url",
            &url,
        ],
        "",
    ));
    assert!(revoked.contains(&id));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = lockgate_store::Store::open(&url).await.unwrap();
        assert!(store.credential_revoked(&id).await.unwrap());
        store.close().await;
    });
}
