//! A real browser for the console's tests: Debian's Chromium, headless, driven through its
//! chromedriver with fantoccini. Each [`Browser`] starts a chromedriver of its own on a free
//! loopback port (so tests run in parallel), with a throwaway profile, and kills it — with the
//! Chromium it started — when dropped.
//!
//! Waiting is always for a condition, polled until a timeout; a timeout panics with what the
//! page had (its address and visible text), never a sleep that hopes.
//!
//! A missing chromium or chromedriver is a failure that says how to install them, never a
//! skipped test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::workspace_root;

/// The browser chromedriver starts.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver (package chromium-driver).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a wait lasts before it fails (the machine may be busy building).
pub const TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// The window of a desktop browser, and of a phone.
pub const DESKTOP: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (390, 844);

/// A headless Chromium session with its own chromedriver.
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn require_installed() {
    for (path, what) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")] {
        assert!(
            Path::new(path).exists(),
            "{path} ({what}) is missing: the console's browser tests need Debian's Chromium and \
             its driver — install them with `apt-get install chromium chromium-driver` (as root), \
             or run the whole suite with `tests/run`"
        );
    }
}

/// Kills chromedriver and everything it started (its process group).
fn kill_group(driver: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", driver.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = driver.kill();
    let _ = driver.wait();
}

/// Where screenshots go: `target/console-screenshots/` (or under `CARGO_TARGET_DIR`).
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("console-screenshots")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a 1280×900 window.
    pub async fn start() -> Browser {
        require_installed();
        let mut last_error = String::new();
        // A free port can be taken between asking and binding: a few tries.
        for _ in 0..3 {
            match Browser::try_start().await {
                Ok(browser) => return browser,
                Err(error) => last_error = error,
            }
        }
        panic!("could not start chromedriver and Chromium: {last_error}");
    }

    async fn try_start() -> Result<Browser, String> {
        use std::os::unix::process::CommandExt as _;
        let profile = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let log_path = profile.path().join("chromedriver.log");
        let log = std::fs::File::create(&log_path).expect("chromedriver log");
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log_path.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            // Its own process group, so that dropping the browser kills Chromium too.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting {CHROMEDRIVER}: {e}"))?;
        let driver_url = format!("http://127.0.0.1:{port}");
        let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(response) = http.get(format!("{driver_url}/status")).send().await
                && let Ok(status) = response.json::<Value>().await
                && status["value"]["ready"] == true
            {
                break;
            }
            if let Ok(Some(exit)) = driver.try_wait() {
                return Err(format!("chromedriver exited with {exit}:\n{}", read_log()));
            }
            if started.elapsed() > TIMEOUT {
                kill_group(&mut driver);
                return Err(format!(
                    "chromedriver did not answer on {driver_url} within {TIMEOUT:?}:\n{}",
                    read_log()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
        let user_data = profile.path().join("profile");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--hide-scrollbars",
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                    format!("--user-data-dir={}", user_data.display()),
                ],
            },
        });
        let capabilities = match capabilities {
            Value::Object(map) => map,
            _ => unreachable!("an object"),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = match ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver_url)
            .await
        {
            Ok(client) => client,
            Err(error) => {
                kill_group(&mut driver);
                return Err(format!(
                    "opening a Chromium session: {error}\nchromedriver log:\n{}",
                    read_log()
                ));
            }
        };
        Ok(Browser {
            client,
            driver,
            profile,
        })
    }

    /// Ends the session (Chromium exits); chromedriver is killed when the browser drops.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    /// Where the profile (and chromedriver's log) is.
    pub fn profile_dir(&self) -> &Path {
        self.profile.path()
    }

    /// Opens `url` and waits until it has loaded.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// The page's address now.
    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("the current address")
            .to_string()
    }

    /// The page's HTML as the browser has it now (after scripts changed it).
    pub async fn source(&self) -> String {
        self.client.source().await.expect("the page source")
    }

    /// What the page shows: its address and visible text, for failure messages.
    pub async fn describe(&self) -> String {
        let url = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_else(|e| format!("(no address: {e})"));
        let text = self
            .client
            .execute(
                "return document.body ? document.body.innerText : '';",
                vec![],
            )
            .await
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|e| format!("(no text: {e})"));
        let mut text = text.trim().to_string();
        if text.len() > 4000 {
            let mut end = 4000;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str(" …");
        }
        format!("the page at {url} shows:\n---\n{text}\n---")
    }

    /// The element matching `css`, which must be there now.
    pub async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(error) => panic!(
                "no element matches {css} ({error}); {}",
                self.describe().await
            ),
        }
    }

    /// Every element matching `css` now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("looking for {css}: {e}"))
    }

    /// Waits until an element matches `css`.
    pub async fn wait_for(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                return element;
            }
            if started.elapsed() > TIMEOUT {
                panic!(
                    "no element matched {css} within {TIMEOUT:?}; {}",
                    self.describe().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the text of the element matching `css` contains `needle`; returns the text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        self.wait_for_text_within(css, needle, TIMEOUT).await
    }

    /// Like [`Browser::wait_for_text`], waiting at most `timeout`.
    pub async fn wait_for_text_within(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let started = Instant::now();
        let mut last = None;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if text.contains(needle) {
                    return text;
                }
                last = Some(text);
            }
            if started.elapsed() > timeout {
                panic!(
                    "{css} did not come to contain {needle:?} within {timeout:?} (its text: \
                     {last:?}); {}",
                    self.describe().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the JavaScript expression `expression` is truthy in the page; returns its
    /// value. `what` says what is awaited, for the failure message.
    pub async fn wait_until(&self, what: &str, expression: &str) -> Value {
        let script = format!("return ({expression});");
        let started = Instant::now();
        loop {
            let value = self.client.execute(&script, vec![]).await;
            if let Ok(value) = &value
                && !matches!(value, Value::Null | Value::Bool(false))
                && value != &json!(0)
                && value != &json!("")
            {
                return value.clone();
            }
            if started.elapsed() > TIMEOUT {
                panic!(
                    "waited {TIMEOUT:?} for {what} ({expression} was {value:?}); {}",
                    self.describe().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the page's address contains `needle`; returns the address.
    pub async fn wait_for_url(&self, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let url = self.url().await;
            if url.contains(needle) {
                return url;
            }
            if started.elapsed() > TIMEOUT {
                panic!(
                    "the address did not come to contain {needle:?} within {TIMEOUT:?}; {}",
                    self.describe().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The text of the element matching `css` now.
    pub async fn text(&self, css: &str) -> String {
        self.find(css)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("the text of {css}: {e}"))
    }

    /// Clicks the element matching `css` (waiting for it to be there).
    pub async fn click(&self, css: &str) {
        let element = self.wait_for(css).await;
        if let Err(error) = element.click().await {
            panic!("clicking {css}: {error}; {}", self.describe().await);
        }
    }

    /// Types `text` into the element matching `css` (waiting for it to be there).
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.wait_for(css).await;
        if let Err(error) = element.send_keys(text).await {
            panic!("typing into {css}: {error}; {}", self.describe().await);
        }
    }

    /// Empties the field matching `css`.
    pub async fn clear(&self, css: &str) {
        let element = self.wait_for(css).await;
        if let Err(error) = element.clear().await {
            panic!("clearing {css}: {error}; {}", self.describe().await);
        }
    }

    /// Whether the checkbox or radio button matching `css` is checked.
    pub async fn is_checked(&self, css: &str) -> bool {
        self.find(css)
            .await
            .is_selected()
            .await
            .unwrap_or_else(|e| panic!("whether {css} is checked: {e}"))
    }

    /// Whether the element matching `css` is shown.
    pub async fn is_displayed(&self, css: &str) -> bool {
        self.find(css)
            .await
            .is_displayed()
            .await
            .unwrap_or_else(|e| panic!("whether {css} is shown: {e}"))
    }

    /// Sets the window's size (outer size; headless Chromium shows it all as the page).
    pub async fn set_size(&self, (width, height): (u32, u32)) {
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|e| panic!("resizing the window to {width}x{height}: {e}"));
        let expected = width;
        self.wait_until(
            &format!("the page to be {width} px wide"),
            &format!("Math.abs(window.innerWidth - {expected}) <= 20"),
        )
        .await;
    }

    /// The width of the page's layout and of its viewport: a page wider than its viewport
    /// overflows sideways.
    pub async fn widths(&self) -> (u64, u64) {
        let value = self
            .client
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await
            .expect("the page's widths");
        (
            value[0].as_u64().expect("scrollWidth"),
            value[1].as_u64().expect("innerWidth"),
        )
    }

    /// Saves what the window shows as `<screenshot_dir>/<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("taking screenshot {name}: {e}"));
        assert!(
            png.starts_with(b"\x89PNG"),
            "screenshot {name} is a PNG ({} bytes)",
            png.len()
        );
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// The browser's cookies for the page it shows: (name, value), e.g. to send the session
    /// cookie with a plain HTTP request.
    pub async fn cookies(&self) -> Vec<(String, String)> {
        self.client
            .get_all_cookies()
            .await
            .expect("the browser's cookies")
            .iter()
            .map(|c| (c.name().to_string(), c.value().to_string()))
            .collect()
    }
}

impl std::ops::Deref for Browser {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}
