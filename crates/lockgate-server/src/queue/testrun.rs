//! Runs a queue's test command in a checkout of the exact result: a clean environment
//! (PATH, HOME, LANG and the variables the queue names — never the server's secrets),
//! its own process group (a timeout kills everything it started), bounded output.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The most output kept (its end: where failures are).
const KEEP: usize = 4096;

/// How a test run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestRun {
    Passed,
    /// Failed (exit status or signal), with the end of its output.
    Failed(String),
    TimedOut,
}

/// What the test command learns about the run.
pub struct Context<'a> {
    pub repo: &'a str,
    pub change_ref: &'a str,
    pub target_sha: &'a str,
    pub result_sha: &'a str,
}

/// Runs `argv` in `dir`.
pub async fn run(
    argv: &[String],
    pass_env: &[String],
    dir: &Path,
    timeout: Duration,
    ctx: &Context<'_>,
) -> TestRun {
    let Some((program, args)) = argv.split_first() else {
        return TestRun::Passed;
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for name in ["PATH", "HOME", "LANG"]
        .iter()
        .map(|s| s.to_string())
        .chain(pass_env.iter().cloned())
    {
        if let Ok(v) = std::env::var(&name) {
            cmd.env(&name, v);
        }
    }
    cmd.env("LOCKGATE_QUEUE_REPO", ctx.repo)
        .env("LOCKGATE_QUEUE_CHANGE", ctx.change_ref)
        .env("LOCKGATE_QUEUE_TARGET_SHA", ctx.target_sha)
        .env("LOCKGATE_QUEUE_RESULT_SHA", ctx.result_sha);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return TestRun::Failed(format!("could not start {program:?}: {e}")),
    };
    let pid = child.id();
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let collect = async {
        // Both pipes drained together (either may fill), keeping only their ends.
        let (o, e) = tokio::join!(tail(out.as_mut()), tail(err.as_mut()));
        let status = child.wait().await;
        (status, o, e)
    };
    match tokio::time::timeout(timeout, collect).await {
        Ok((Ok(status), o, e)) if status.success() => {
            let _ = (o, e);
            TestRun::Passed
        }
        Ok((status, o, e)) => {
            let how = match status {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            let mut text = format!("{how}\n{o}{e}");
            if text.len() > KEEP {
                let cut = text.len() - KEEP;
                let cut = (cut..text.len())
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                text = format!("…{}", &text[cut..]);
            }
            TestRun::Failed(text.trim_end().to_string())
        }
        Err(_) => {
            if let Some(pid) = pid {
                // The whole process group: a shell's children too.
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status();
            }
            TestRun::TimedOut
        }
    }
}

/// Reads a pipe to its end, keeping the last [`KEEP`] bytes.
async fn tail<R: tokio::io::AsyncRead + Unpin>(pipe: Option<&mut R>) -> String {
    let Some(pipe) = pipe else {
        return String::new();
    };
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * KEEP {
            kept.drain(..kept.len() - KEEP);
        }
    }
    if kept.len() > KEEP {
        kept.drain(..kept.len() - KEEP);
    }
    String::from_utf8_lossy(&kept).into_owned()
}
