//! A real browser for UI tests: headless Chromium through chromedriver (Debian's
//! packages, which `.ci/run` installs), and the few steps every UI test takes.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::path::{Path, PathBuf};

/// chromedriver, or `None` (after a NOTICE) when this machine has none.
pub fn chromedriver() -> Option<PathBuf> {
    let path = PathBuf::from(
        std::env::var("LOCKGATE_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into()),
    );
    if path.exists() {
        return Some(path);
    }
    if std::env::var("LOCKGATE_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
        panic!(
            "LOCKGATE_REQUIRE_BROWSER=1 but {} is missing",
            path.display()
        );
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "NOTICE: web UI browser test skipped — install Debian's chromium and chromium-driver (as .ci/run does)"
    );
    None
}

/// chromedriver on a free port, killed on drop.
pub struct Driver {
    child: std::process::Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_driver(path: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut driver = Driver {
        child: std::process::Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
        port,
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return driver;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = driver.child.kill();
    panic!("chromedriver did not start");
}

pub async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": std::env::var("LOCKGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session in headless Chromium")
}

pub async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/ui")).await.unwrap();
    assert!(
        c.current_url().await.unwrap().path().ends_with("/ui/login"),
        "signed-out visitors are sent to sign in"
    );
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    click(c, "form button[type=submit]").await;
    c.wait()
        .for_element(Locator::Css("header .who"))
        .await
        .unwrap();
}

pub async fn sign_out(c: &Client) {
    click(c, "header form button").await;
    c.wait().for_element(Locator::Css("#token")).await.unwrap();
}

pub async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

pub async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}
