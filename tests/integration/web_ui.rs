//! The web UI in a real browser: Debian's Chromium, headless, driven through ChromeDriver's W3C
//! WebDriver protocol (JSON over plain HTTP on loopback, spoken here with std's `TcpStream`)
//! against a cluster of real processes running slow-sink, whose sources are backpressured by
//! throttled sinks.
//!
//! The test reads the pages as a user would (the overview, the job's graph, its checkpoints,
//! the TaskManagers), cancels the job with the buttons (refused without the token, done with
//! it), and fails on any error in the browser's console. Screenshots of the pages go to
//! `$WEIR_TEST_ARTEFACTS/ui/` (else `<temp dir>/weir-test-artefacts/ui/`);
//! `WEIR_UPDATE_DOCS_SCREENSHOT=1` also copies the job graph's to `docs/images/web-ui-job.png`
//! for the README.
//!
//! Chromium and ChromeDriver come from `scripts/setup.sh --tests`; without them the test fails
//! saying so rather than being skipped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::{Cluster, TIMEOUT, submit_backpressured};
use crate::support::{TempDir, repo_root};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// One condition on the page, polled for.
const PAGE_DEADLINE: Duration = Duration::from_secs(60);
/// One WebDriver command (a navigation waits for the page to load).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The key of an element reference in WebDriver's JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One HTTP/1.1 request on its own connection: (status, body). The body is read by its
/// Content-Length: ChromeDriver keeps the connection open after answering, `Connection: close`
/// or not.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let complete = |raw: &[u8]| -> Option<usize> {
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        if head.contains("transfer-encoding: chunked") {
            return raw.ends_with(b"0\r\n\r\n").then_some(raw.len());
        }
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())?;
        (raw.len() >= end + length).then_some(end + length)
    };
    let len = loop {
        if let Some(len) = complete(&raw) {
            break len;
        }
        match stream.read(&mut buf)? {
            0 => break raw.len(),
            n => raw.extend_from_slice(&buf[..n]),
        }
    };
    let text = String::from_utf8_lossy(&raw[..len]);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_owned() };
    Ok((status, body))
}

/// A chunked body's data (ChromeDriver sends Content-Length, but a proxy may not).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Standard base64 (a screenshot's PNG).
fn base64_decode(text: &str) -> Vec<u8> {
    let sextet = |c: u8| -> u32 {
        u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("{:?} is not a base64 digit", c as char),
        })
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        acc = (acc << 6) | sextet(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// What a missing browser tells the person running the tests.
fn require(path: &str) {
    assert!(
        Path::new(path).is_file(),
        "{path} is missing: the web UI's test drives Debian's chromium and chromium-driver; run \
         scripts/setup.sh --tests, which installs them"
    );
}

/// A ChromeDriver process on a free loopback port, killed by its pid when dropped, with every
/// Chromium process still running on `profile` (none, once the session was deleted).
struct ChromeDriver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl ChromeDriver {
    fn start(profile: &Path, log: &Path) -> ChromeDriver {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {CHROMEDRIVER}: {e}"));
        let mut driver = ChromeDriver { child, port, profile: profile.to_owned() };
        let start = Instant::now();
        loop {
            if let Ok((200, body)) = http(port, "GET", "/status", None)
                && serde_json::from_str::<Value>(&body).is_ok_and(|v| v["value"]["ready"] == true)
            {
                return driver;
            }
            if let Some(status) = driver.child.try_wait().unwrap() {
                panic!("chromedriver exited with {status} before answering; its log: {}", log.display());
            }
            assert!(start.elapsed() < Duration::from_secs(20), "chromedriver was not ready within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A browser the session did not close (the test failed before deleting it): found by
        // its own profile directory, which no other process uses.
        let Ok(entries) = std::fs::read_dir("/proc") else { return };
        let profile = self.profile.to_string_lossy().into_owned();
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&profile) {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
    }
}

/// A WebDriver session: one headless Chromium, closed when dropped.
struct Browser<'a> {
    driver: &'a ChromeDriver,
    session: String,
    /// Every console entry read so far (reading the log empties it).
    console: Vec<Value>,
    artefacts: PathBuf,
}

impl<'a> Browser<'a> {
    fn open(driver: &'a ChromeDriver, artefacts: PathBuf) -> Browser<'a> {
        let profile = format!("--user-data-dir={}", driver.profile.display());
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                // Without the background-networking flags Chromium keeps calling Google's
                // services, which a closed network answers with nothing but retries.
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--window-size=1400,900", profile],
            },
        }}});
        let (status, body) = http(driver.port, "POST", "/session", Some(&capabilities)).expect("ask chromedriver");
        let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(status, 200, "chromedriver did not start a session: {body}");
        let session = answer["value"]["sessionId"].as_str().expect("a session id").to_owned();
        let browser = Browser { driver, session, console: Vec::new(), artefacts };
        browser.command("POST", "/timeouts", Some(json!({"script": 10_000, "pageLoad": 30_000, "implicit": 0})));
        browser
    }

    /// A command of this session; a WebDriver error fails the test with its message.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let (status, text) =
            http(self.driver.port, method, &path, body.as_ref()).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(status, 200, "{method} {path}: {text}");
        answer["value"].clone()
    }

    fn go(&self, url: &str) {
        self.command("POST", "/url", Some(json!({"url": url})));
    }

    /// Runs `body` (a function body: `return …`) in the page.
    fn script(&self, body: &str) -> Value {
        self.command("POST", "/execute/sync", Some(json!({"script": body, "args": []})))
    }

    fn element(&self, css: &str) -> String {
        let found = self.command("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {found}")).to_owned()
    }

    /// Clicks as a user does: WebDriver scrolls the element into view and clicks its centre.
    fn click(&self, css: &str) {
        let id = self.element(css);
        self.command("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.command("POST", &format!("/element/{id}/value"), Some(json!({"text": text})));
    }

    fn text(&self, css: &str) -> String {
        let css = serde_json::to_string(css).unwrap();
        self.script(&format!("return document.querySelector({css})?.textContent ?? null"))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Polls `condition` (a script body returning a boolean) until it holds; past the deadline
    /// fails with what the page shows, its console and a screenshot.
    fn wait_for(&mut self, what: &str, condition: &str) {
        let start = Instant::now();
        loop {
            if self.script(condition) == Value::Bool(true) {
                return;
            }
            if start.elapsed() > PAGE_DEADLINE {
                self.screenshot("timed-out");
                let page = self.script("return document.body.innerText");
                let console = self.read_console();
                panic!(
                    "timed out after {PAGE_DEADLINE:?} waiting for {what} ({condition}); the page shows:\n{}\n\
                     console: {console:?}\nscreenshot in {}",
                    page.as_str().unwrap_or_default(),
                    self.artefacts.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The console entries since the last read (ChromeDriver's `POST /se/log`; its older
    /// `GET /log` is an unknown command in ChromeDriver 148).
    fn read_console(&mut self) -> Vec<Value> {
        let entries = self.command("POST", "/se/log", Some(json!({"type": "browser"})));
        let entries = entries.as_array().cloned().unwrap_or_default();
        self.console.extend(entries.iter().cloned());
        entries
    }

    /// Fails on any console error (`SEVERE`: a script error, a failed request, a refused CSP)
    /// but those `allowed` accepts.
    fn assert_no_console_errors(&mut self, when: &str, allowed: impl Fn(&str) -> bool) {
        let errors: Vec<Value> = self
            .read_console()
            .into_iter()
            .filter(|e| e["level"] == "SEVERE" && !allowed(e["message"].as_str().unwrap_or_default()))
            .collect();
        assert!(errors.is_empty(), "console errors {when}: {errors:#?}");
    }

    /// Saves the viewport as `NAME.png` in the artefacts directory, checking it is a PNG.
    fn screenshot(&self, name: &str) -> PathBuf {
        let encoded = self.command("GET", "/screenshot", None);
        let png = base64_decode(encoded.as_str().expect("a base64 screenshot"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "the screenshot {name} is not a PNG");
        let path = self.artefacts.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        // Closes Chromium; ChromeDriver itself is killed after.
        let _ = http(self.driver.port, "DELETE", &format!("/session/{}", self.session), None);
    }
}

/// Where the screenshots go: `$WEIR_TEST_ARTEFACTS/ui`, else the temp dir's
/// `weir-test-artefacts/ui`.
fn artefacts_dir() -> PathBuf {
    let root = std::env::var_os("WEIR_TEST_ARTEFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("weir-test-artefacts"));
    let dir = root.join("ui");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// A script body: the job header shows `status`.
fn job_status_is(status: &str) -> String {
    format!("return document.getElementById('job-head')?.dataset.jobStatus === '{status}'")
}

#[test]
fn the_web_ui_shows_a_backpressured_job_and_cancels_it_with_the_token() {
    require(CHROMIUM);
    require(CHROMEDRIVER);
    let began = Instant::now();
    let cluster = Cluster::start(2, 1);
    let out = TempDir::new("web-ui-out");
    let id = submit_backpressured(&cluster, &out);
    let browser_dir = TempDir::new("web-ui-chromium");
    let driver = ChromeDriver::start(&browser_dir.join("profile"), &browser_dir.join("chromedriver.log"));
    let artefacts = artefacts_dir();
    let mut browser = Browser::open(&driver, artefacts.clone());
    let base = format!("http://{}/", cluster.rest_addr());

    // The overview: the TaskManagers, the slots, the running job.
    browser.go(&base);
    browser.wait_for(
        "the overview to list the job as RUNNING",
        &format!("return document.querySelector('#running-jobs [data-job-id=\"{id}\"]')?.dataset.status === 'RUNNING'"),
    );
    browser.wait_for(
        "the overview's TaskManagers and slots",
        "return document.querySelector('#card-taskmanagers .card-value')?.textContent === '2' \
         && document.querySelector('#card-slots .card-value')?.textContent === '0 / 2'",
    );
    browser.screenshot("overview");

    // The job, through its link: both vertices drawn, the edge labelled, records moving.
    browser.click(&format!("#running-jobs [data-job-id=\"{id}\"] a.job-link"));
    browser.wait_for("the job's header to show it RUNNING", &job_status_is("RUNNING"));
    browser.wait_for(
        "the graph's two vertices",
        "return document.querySelectorAll('#job-graph [data-vertex]').length === 2",
    );
    assert_eq!(browser.text("[data-partitioning='Hash'] text"), "HASH", "the keyed edge's label");
    assert_eq!(browser.text("[data-vertex='1'] .v-title"), "by-user → throttled", "the sink vertex's chain");
    let sunk = browser.script("return Number(document.querySelector('[data-vertex=\"1\"]').dataset.readRecords)");
    let sunk = sunk.as_f64().unwrap();
    browser.wait_for(
        "the sinks' records to grow, and both vertices' rates",
        &format!(
            "const [s, v] = [0, 1].map(i => document.querySelector(`[data-vertex=\"${{i}}\"]`).dataset); \
             return Number(v.readRecords) > {sunk} && Number(v.inRate) > 0 && Number(s.inRate) > 0"
        ),
    );
    browser.wait_for(
        "the vertex table's subtasks, with their TaskManagers",
        "return document.querySelectorAll('#vertex-rows [data-subtask]').length === 4 \
         && [...document.querySelectorAll('#vertex-rows [data-subtask] .tm')].every(t => t.textContent.startsWith('taskmanager-'))",
    );
    browser.wait_for(
        "the sources to show backpressure (the dark colour of a vertex waiting on its output)",
        "const v = document.querySelector('[data-vertex=\"0\"]').dataset; return Number(v.backpressured) > 0.5",
    );

    // Its checkpoints (every 200 ms; aligned barriers wait behind the queued records).
    browser.click("#tab-checkpoints");
    browser.wait_for(
        "a completed checkpoint in the history",
        "return document.querySelector('#checkpoint-rows tr[data-checkpoint-status=\"COMPLETED\"]') !== null",
    );
    browser.screenshot("checkpoints");
    // The graph again, with some seconds of history in its sparklines and a checkpoint.
    browser.click("#tab-graph");
    browser.wait_for(
        "the graph with a checkpoint among the facts",
        "return !document.getElementById('body-graph').hidden \
         && document.getElementById('job-facts').textContent.includes('Last checkpoint#')",
    );
    browser.screenshot("job-graph");
    if std::env::var_os("WEIR_UPDATE_DOCS_SCREENSHOT").is_some() {
        let docs = repo_root().join("docs/images/web-ui-job.png");
        std::fs::create_dir_all(docs.parent().unwrap()).unwrap();
        std::fs::copy(artefacts.join("job-graph.png"), &docs).unwrap();
    }
    browser.click("#tab-exceptions");
    browser.wait_for(
        "no restarts and no failures",
        "return document.querySelector('#restarts .card-value')?.textContent === '0' \
         && document.getElementById('exception-empty')?.textContent.includes('No failures')",
    );

    // The TaskManagers, each running one subtask of each vertex.
    browser.click("#nav-taskmanagers");
    browser.wait_for(
        "two TaskManagers, each with its slot taken",
        "const rows = [...document.querySelectorAll('#taskmanagers tr[data-taskmanager]')]; \
         return rows.length === 2 && rows.every(r => r.children[2].textContent === '0' && r.children[4].textContent === '2')",
    );
    let ids = browser.script(
        "return [...document.querySelectorAll('#taskmanagers tr[data-taskmanager]')].map(r => r.dataset.taskmanager)",
    );
    assert_eq!(ids, json!(["taskmanager-0", "taskmanager-1"]));
    browser.screenshot("taskmanagers");
    browser.assert_no_console_errors("while reading the pages", |_| false);

    // Cancel without the token: the API's 401 in the page, the job still running.
    browser.go(&format!("{base}#/jobs/{id}"));
    browser.wait_for("the job page", &job_status_is("RUNNING"));
    assert_eq!(browser.script("return document.getElementById('token').value"), json!(""));
    browser.click("#action-cancel");
    browser.wait_for("the in-page confirmation", "return !document.getElementById('action-confirm-panel').hidden");
    browser.click("#action-confirm");
    browser.wait_for(
        "the refusal in the page",
        "const r = document.getElementById('action-result'); \
         return r.dataset.state === 'error' && r.textContent.includes('401') && r.textContent.includes('Authorization')",
    );
    assert_eq!(cluster.job(&id)["state"], "RUNNING", "a call without the token cancelled the job");
    browser.screenshot("refused-cancel");
    // The browser reports the refused request itself as a failed resource load.
    let refused = format!("/jobs/{id}?mode=cancel");
    browser.assert_no_console_errors("after the refused cancel", |m| m.contains(&refused) && m.contains("401"));

    // With the token: cancelled, as the API and the page say.
    browser.type_into("#token", &cluster.token());
    browser.click("#action-cancel");
    browser.wait_for("the in-page confirmation", "return !document.getElementById('action-confirm-panel').hidden");
    browser.click("#action-confirm");
    cluster.wait_for("the job to be CANCELED", TIMEOUT, || cluster.job(&id)["state"] == "CANCELED");
    browser.wait_for("the page to show the job CANCELED", &job_status_is("CANCELED"));
    browser.wait_for(
        "the cancellation's confirmation in the page",
        "return document.getElementById('action-result').dataset.state === 'ok' \
         && document.getElementById('action-cancel').disabled",
    );
    browser.assert_no_console_errors("after the cancel", |_| false);
    assert_eq!(
        browser.script("return sessionStorage.getItem('weir.rest-token') !== null && !location.href.includes('token')"),
        json!(true),
        "the token is kept in the tab's sessionStorage and never in the URL"
    );

    println!(
        "web UI test: {:.1} s; screenshots (overview, job-graph, checkpoints, taskmanagers, refused-cancel) in {}; \
         {} console entries, none an error but the refused call",
        began.elapsed().as_secs_f64(),
        artefacts.display(),
        browser.console.len()
    );
}

#[test]
fn base64_decodes_with_and_without_padding() {
    assert_eq!(base64_decode("iVBORw0KGgo="), b"\x89PNG\r\n\x1a\n");
    assert_eq!(base64_decode("TWFu"), b"Man");
    assert_eq!(base64_decode("TWE="), b"Ma");
    assert_eq!(base64_decode("TQ=="), b"M");
    assert_eq!(dechunk("4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"), "Wikipedia");
}
