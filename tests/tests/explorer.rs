//! The web explorer of a live network (4 participants, 2 observers, every node's explorer
//! enabled by `kpledger testnet init`): after a custody flow, the certificate's page on BW's
//! explorer shows it received with three signed steps and its figures, an observer's explorer
//! shows the same steps without them; the proof bundle downloads, and `kpledger verify-proof`
//! accepts it; every link reachable from the network page answers; bad input gets 400 or 404
//! pages, never a 500; a request for another host name is refused. Then Debian's headless
//! Chromium, driven through chromedriver, opens the pages as a reviewer would and saves
//! screenshots under target/explorer-screenshots/ (skipped, with the reason printed, where
//! Chromium or chromedriver is missing, unless KP_REQUIRE_BROWSER is set).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_e2e::net::*;
use serde_json::Value;
use std::collections::{BTreeSet, VecDeque};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The explorer address in a node's configuration.
fn explorer_of(node_dir: &Path) -> SocketAddr {
    let config = std::fs::read_to_string(node_dir.join("node.toml")).unwrap();
    let line = config.lines().find(|l| l.starts_with("explorer = ")).expect("testnet init enables the explorer");
    line.split('"').nth(1).unwrap().parse().unwrap()
}

/// One HTTP/1.1 GET: (status, headers, body).
fn get_with_host(addr: SocketAddr, target: &str, host: &str) -> (u16, String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = unchunk(&body);
    }
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, body)
}

fn unchunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&b[..line_end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[line_end + 2..line_end + 2 + size]);
        b = &b[line_end + 2 + size + 2..];
    }
}

fn get(addr: SocketAddr, target: &str) -> (u16, String, String) {
    let (status, head, body) = get_with_host(addr, target, &addr.to_string());
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// Every `href` of a page that stays on the explorer.
fn links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(|s| s.replace("&amp;", "&"))
        .filter(|l| l.starts_with('/'))
        .collect()
}

#[test]
fn the_explorer_shows_a_custody_flow_to_a_browser_and_refuses_bad_input() {
    let net = Net::start(4, 0);
    let work = tempfile::tempdir().unwrap();
    let year = kp_node::now().date().year();
    let number = format!("BW-{year}-000001");
    let file = certificate(work.path(), &number);
    let issued = net.submit(&["issue", "--file", path(&file), "--wait"], "BW", "exporting", "BW");
    assert_eq!(issued["outcome"], "committed", "{issued}");
    let sealed = net.submit(
        &["seal", &number, "--seal", "S-1", "--port-of-exit", "Gaborone", "--wait"],
        "BW",
        "exporting",
        "BW",
    );
    assert_eq!(sealed["outcome"], "committed", "{sealed}");
    let received =
        net.submit(&["receive", &number, "--parcels", "12", "--carats", "12500.75", "--wait"], "EU", "importing", "EU");
    assert_eq!(received["outcome"], "committed", "{received}");
    net.converge(received["height"].as_u64().unwrap(), Duration::from_secs(60));

    let bw = explorer_of(&net.node_dir("BW"));
    let observer = explorer_of(&net.dir().join("observers").join("CSC"));
    let page = format!("/certificate/{number}");
    // The explorers index each block as it commits.
    for addr in [bw, observer] {
        wait_for("the explorer to show the receipt", Duration::from_secs(30), || {
            let (status, _, body) = get(addr, &format!("{page}?format=json"));
            (status == 200 && body.contains("\"state\":\"received\"")).then_some(())
        });
    }
    let (status, head, html) = get(bw, &page);
    assert_eq!(status, 200, "{html}");
    assert!(head.to_ascii_lowercase().contains("content-security-policy: default-src 'none'"), "{head}");
    assert!(html.contains("data-state=\"received\"") && html.contains("12500.75"), "{html}");
    assert_eq!(html.matches("class=\"step\"").count(), 3, "{html}");
    assert!(html.contains("authority:BW"), "the page says whose view it is");
    let (_, _, json) = get(bw, &format!("{page}?format=json"));
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["steps"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["steps"][2]["signer"], "EU importing", "{v}");
    let (status, _, csv) = get(bw, &format!("{page}?format=csv"));
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let (status, _, csv) = get(bw, &format!("/participant/BW?year={year}&format=csv&table=exports"));
    assert_eq!(status, 200, "{csv}");
    assert!(csv.lines().nth(1).unwrap().starts_with("all,all,1,12500.75,"), "{csv}");

    // An observer's explorer: the same steps, no figures, no bundle.
    let (status, _, seen) = get(observer, &page);
    assert_eq!(status, 200);
    assert_eq!(seen.matches("class=\"step\"").count(), 3);
    assert!(!seen.contains("12500") && seen.contains("withheld") && seen.contains("observer"), "{seen}");
    let (status, _, _) = get(observer, &format!("{page}/proof"));
    assert_eq!(status, 403);

    // The proof bundle, downloaded from BW's explorer, checks offline against the genesis; the
    // verify action says the same.
    let (status, head, bundle) = get_with_host(bw, &format!("{page}/proof"), "localhost");
    assert_eq!(status, 200, "{head}");
    let bundle_file = work.path().join("bundle.kpproof");
    std::fs::write(&bundle_file, &bundle).unwrap();
    let verified = ok(&["verify-proof", path(&bundle_file), "--genesis", path(&net.genesis_file())]);
    assert!(verified.contains("VERIFIED"), "{verified}");
    for addr in [bw, observer] {
        let (status, _, v) = get(addr, &format!("{page}/verify"));
        assert_eq!(status, 200);
        assert!(v.contains("id=\"verdict\" class=\"verified\""), "{v}");
    }

    // Every page reachable from the network page answers (bounded crawl).
    let mut seen_links = BTreeSet::new();
    let mut queue = VecDeque::from(["/".to_owned(), format!("/participant/BW?year={year}"), "/anomalies".into()]);
    while let Some(link) = queue.pop_front() {
        if seen_links.len() >= 150 || !seen_links.insert(link.clone()) {
            continue;
        }
        let (status, _, body) = get(bw, &link);
        assert_eq!(status, 200, "{link}: {body}");
        if !link.ends_with("/proof") && !link.contains("format=") {
            queue.extend(links(&body).into_iter().filter(|l| !seen_links.contains(l)));
        }
    }
    assert!(seen_links.len() > 20, "{seen_links:?}");

    // Bad input: a clear 400 or 404 page, never a 500.
    let long = "a".repeat(6_000);
    let cases: Vec<(String, u16)> = vec![
        ("/certificate/not%20a%20number".into(), 400),
        ("/certificate/ZZ-0000-NOTHING".into(), 404),
        ("/event/xyz".into(), 400),
        (format!("/event/{}", "0".repeat(64)), 404),
        ("/block/999999999".into(), 404),
        ("/block/abc".into(), 400),
        ("/block/18446744073709551616".into(), 400),
        ("/blocks?before=99999999999".into(), 404),
        ("/participant/BW?page=99999999999999999999999".into(), 400),
        ("/participant/BW?page=1000000".into(), 404),
        ("/participant/BW?from=2026-13-01".into(), 400),
        ("/participant/BW?from=2026-06-01&to=2026-01-01".into(), 400),
        ("/participant/ZZ".into(), 404),
        ("/participant/bw1".into(), 400),
        ("/anomalies?kind=nope".into(), 400),
        ("/anomalies?page=0".into(), 400),
        ("/statistics?year=-5".into(), 400),
        (format!("/statistics?{long}=1"), 400),
        (format!("/search?q={long}"), 404),
        ("/search?q=".into(), 400),
        ("/search?q=%ZZ".into(), 404),
        ("/nothing/here".into(), 404),
        (format!("{page}?format=xml"), 400),
        ("/participant/BW?format=csv&table=nope".into(), 404),
    ];
    for (target, expected) in &cases {
        let (status, _, body) = get(bw, target);
        assert_eq!(status, *expected, "{target}: {body}");
        assert!(body.contains("class=\"error\"") || body.contains("\"error\""), "{target}: {body}");
    }
    // A huge request line is refused by the HTTP layer, not by a crash.
    let (status, _, _) = get(bw, &format!("/search?q={}", "b".repeat(200_000)));
    assert!((400..500).contains(&status), "{status}");
    let (status, _, _) = get(bw, "/");
    assert_eq!(status, 200, "the explorer still answers");
    // Search finds a certificate, a participant and a height.
    for (q, location) in
        [(number.clone(), page.clone()), ("bw".into(), "/participant/BW".into()), ("2".into(), "/block/2".into())]
    {
        let (status, head, _) = get(bw, &format!("/search?q={q}"));
        assert_eq!(status, 303, "{q}: {head}");
        assert!(head.contains(&format!("location: {location}")), "{q}: {head}");
    }
    // DNS rebinding: a page of another site that resolves to this address is refused.
    let (status, _, _) = get_with_host(bw, "/", "evil.example:80");
    assert_eq!(status, 421);

    browser(bw, &number);
}

/// The browser part: Debian's chromium and chromium-driver, driven by tests/python/explorer_browser.py.
fn browser(explorer: SocketAddr, number: &str) {
    let required = std::env::var_os("KP_REQUIRE_BROWSER").is_some();
    let missing: Vec<&str> =
        ["/usr/bin/chromium", "/usr/bin/chromedriver"].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if !missing.is_empty() {
        assert!(
            !required,
            "KP_REQUIRE_BROWSER is set but {missing:?} are missing (apt install chromium chromium-driver)"
        );
        println!("SKIPPED the browser part: {missing:?} not installed (apt install chromium chromium-driver)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = root.join("target").join("explorer-screenshots");
    let script = root.join("tests/python/explorer_browser.py");
    let run = std::process::Command::new("python3")
        .arg(&script)
        .args(["--base", &format!("http://{explorer}"), "--certificate", number, "--participant", "BW", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "the browser checks failed:\n{stdout}\n{stderr}");
    println!("browser: {stdout} screenshots in {}", out.display());
    for shot in ["certificate", "verify", "participant", "statistics", "network"] {
        let png = std::fs::read(out.join(format!("{shot}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "{shot}.png");
    }
}
