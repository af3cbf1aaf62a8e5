//! End-to-end test support: live networks of `kpledger node` processes on loopback, driven
//! through the CLI as operators and authorities use it (the tests are in `tests/`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// A test network of real node processes, and the CLI calls the tests make.
pub mod net {
    use serde_json::Value;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};
    use std::time::{Duration, Instant};

    pub fn kpledger_bin() -> PathBuf {
        // target/<profile>/deps/network-<hash> → target/<profile>/kpledger
        let exe = std::env::current_exe().unwrap();
        let bin = exe.parent().and_then(Path::parent).unwrap().join("kpledger");
        assert!(bin.is_file(), "{} is missing: build it first (cargo build -p kpledger)", bin.display());
        bin
    }

    /// The test networks of this process by their nodes' API addresses: a CLI call naming a node
    /// (`--node ADDR`) reaches it with its network's CA and identities (`KP_TESTNET`).
    static NETWORKS: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());

    /// The test network directory whose node serves `api`, if one of this process's.
    pub fn network_of(api: &str) -> Option<PathBuf> {
        let nets = NETWORKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        nets.iter().find(|(a, _)| a == api).map(|(_, d)| d.clone())
    }

    /// Makes the nodes of the test network in `dir` known to [`kpledger`] (until [`forget`]).
    pub fn register(dir: &Path) {
        let mut found = Vec::new();
        for entry in walk_configs(dir) {
            let config = std::fs::read_to_string(&entry).unwrap();
            if let Some(line) = config.lines().find(|l| l.starts_with("api = ")) {
                found.push((line.trim_start_matches("api = ").trim_matches('"').to_owned(), dir.to_path_buf()));
            }
        }
        NETWORKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(found);
    }

    pub fn forget(dir: &Path) {
        NETWORKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|(_, d)| d != dir);
    }

    fn walk_configs(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().is_some_and(|n| n == "node.toml") {
                    out.push(p);
                }
            }
        }
        out
    }

    pub fn kpledger(args: &[&str]) -> Output {
        let mut command = Command::new(kpledger_bin());
        let node = args.iter().position(|a| *a == "--node").and_then(|i| args.get(i + 1));
        if let Some(dir) = node.and_then(|n| network_of(n)) {
            command.env("KP_TESTNET", dir);
        }
        command.args(args).output().expect("kpledger runs")
    }

    pub fn ok(args: &[&str]) -> String {
        let out = kpledger(args);
        assert!(
            out.status.success(),
            "kpledger {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&ok(&all)).unwrap()
    }

    pub fn path(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    /// Polls `check` every 200 ms until it returns `Some`, at most `limit`.
    pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(v) = check() {
                return v;
            }
            assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A test network in a temporary directory; brought down (every process) when dropped.
    #[derive(Debug)]
    pub struct Net {
        dir: tempfile::TempDir,
        /// Nodes this test started itself (restarts): reaped when the network is brought down.
        children: std::cell::RefCell<Vec<std::process::Child>>,
        /// The WAN relay of a network started with [`Net::start_wan`].
        relay: std::cell::RefCell<Option<std::process::Child>>,
    }

    impl Net {
        /// `slot` separates the ports of the tests of this process, which run at once.
        pub fn start(participants: usize, slot: u32) -> Net {
            Net::start_with(&["--participants", &participants.to_string()], slot, false)
        }

        /// A network of the participants `codes` (comma-separated) whose peers reach each other
        /// through the WAN relay (`kpledger testnet init --wan`, `testnet relay`): every link
        /// delayed as between the nodes' capitals.
        pub fn start_wan(codes: &str, slot: u32) -> Net {
            Net::start_with(&["--codes", codes, "--wan"], slot, true)
        }

        fn start_with(selection: &[&str], slot: u32, wan: bool) -> Net {
            let dir = tempfile::tempdir().unwrap();
            // Ports of this test process, away from other runs: 3 per node, participants and 2 observers.
            // Below the kernel's ephemeral range (32768 and up), 250 ports per test process.
            let base = 10_000 + (std::process::id() % 90) * 250 + slot * 20;
            let mut args = vec!["testnet", "init", "--dir", path(dir.path())];
            let base = base.to_string();
            args.extend_from_slice(&["--base-port", &base]);
            args.extend_from_slice(selection);
            ok(&args);
            let net = Net { dir, children: std::cell::RefCell::new(Vec::new()), relay: std::cell::RefCell::new(None) };
            register(net.dir.path());
            if wan {
                net.start_relay(&[]);
            }
            ok(&["testnet", "up", "--dir", path(net.dir.path()), "--timeout", "60"]);
            net
        }

        /// Starts the WAN relay (with `kpledger testnet relay` options) and waits until it
        /// listens (DIR/wan.json written).
        pub fn start_relay(&self, options: &[&str]) {
            let table = self.dir().join("wan.json");
            let _ = std::fs::remove_file(&table);
            let child = Command::new(kpledger_bin())
                .args(["testnet", "relay", "--dir", path(self.dir())])
                .args(options)
                .stdout(std::fs::File::create(self.dir().join("relay.json")).unwrap())
                .stderr(std::fs::File::create(self.dir().join("relay.log")).unwrap())
                .spawn()
                .unwrap();
            *self.relay.borrow_mut() = Some(child);
            wait_for("the relay to listen", Duration::from_secs(20), || {
                if let Some(status) = self.relay.borrow_mut().as_mut().and_then(|c| c.try_wait().unwrap()) {
                    panic!(
                        "the relay exited ({status}): {}",
                        std::fs::read_to_string(self.dir().join("relay.log")).unwrap()
                    );
                }
                table.is_file().then_some(())
            });
        }

        /// Stops the WAN relay (SIGTERM) and returns its report: what it carried.
        pub fn stop_relay(&self) -> Value {
            let mut child = self.relay.borrow_mut().take().expect("a relay runs");
            assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
            let status = child.wait().unwrap();
            assert!(status.success(), "the relay: {status}");
            serde_json::from_str(&std::fs::read_to_string(self.dir().join("relay.json")).unwrap()).unwrap()
        }

        /// The network's directory.
        pub fn dir(&self) -> &Path {
            self.dir.path()
        }

        /// The network's genesis file (JSON).
        pub fn genesis_file(&self) -> PathBuf {
            self.dir.path().join("genesis.json")
        }

        pub fn node_dir(&self, node: &str) -> PathBuf {
            let p = self.dir.path().join(node);
            if p.is_dir() { p } else { self.dir.path().join("observers").join(node) }
        }

        pub fn api(&self, node: &str) -> String {
            let config = std::fs::read_to_string(self.node_dir(node).join("node.toml")).unwrap();
            let line = config.lines().find(|l| l.starts_with("api = ")).unwrap();
            line.trim_start_matches("api = ").trim_matches('"').to_owned()
        }

        pub fn nodes(&self) -> Vec<String> {
            let genesis: Value =
                serde_json::from_str(&std::fs::read_to_string(self.dir.path().join("genesis.json")).unwrap()).unwrap();
            let mut names: Vec<String> = genesis["participants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_owned())
                .collect();
            names.extend(genesis["observers"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_owned()));
            names
        }

        pub fn status(&self, node: &str) -> Option<Value> {
            // With the network named: a node configured after the start is not registered.
            let dir = self.dir().to_str().unwrap().to_owned();
            let out = kpledger(&["--json", "--testnet", &dir, "status", "--node", &self.api(node)]);
            out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
        }

        pub fn pid(&self, node: &str) -> String {
            std::fs::read_to_string(self.node_dir(node).join("node.pid")).unwrap().trim().to_owned()
        }

        pub fn signal(&self, node: &str, signal: &str) {
            let pid = self.pid(node);
            assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success(), "kill {signal} {pid}");
        }

        /// Kills a node with SIGKILL and waits until it is gone.
        pub fn kill(&self, node: &str) {
            self.signal(node, "-KILL");
            let pid = self.pid(node);
            wait_for("the killed node to exit", Duration::from_secs(10), || {
                let alive = Command::new("kill").args(["-0", &pid]).stderr(Stdio::null()).status().unwrap().success();
                let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.split_whitespace().nth(2) == Some("Z"))
                    .unwrap_or(true);
                (!alive || zombie).then_some(())
            });
        }

        /// Starts a node's process again on its configuration (and data directory).
        pub fn restart(&self, node: &str) {
            self.restart_with(node, &[]);
        }

        /// [`Net::restart`] with more environment variables for the node's process.
        pub fn restart_with(&self, node: &str, env: &[(&str, &str)]) {
            let dir = self.node_dir(node);
            let log = std::fs::OpenOptions::new().append(true).create(true).open(dir.join("node.log")).unwrap();
            let child = Command::new(kpledger_bin())
                .envs(env.iter().copied())
                .args(["node", "--config", path(&dir.join("node.toml"))])
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            std::fs::write(dir.join("node.pid"), format!("{}\n", child.id())).unwrap();
            self.children.borrow_mut().push(child);
            let started = Instant::now();
            while self.status(node).is_none() {
                let log = self.log(node);
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "{node} did not answer after a restart:\n{tail:#?}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }

        /// `kpledger cert ARGS`, signed with `signer`'s `role` key, through `via`'s node.
        pub fn submit(&self, args: &[&str], signer: &str, role: &str, via: &str) -> Value {
            self.signed("cert", args, signer, role, via)
        }

        /// `kpledger governance ARGS`, signed with `signer`'s exporting authority key, through
        /// `via`'s node: the act's status.
        pub fn governance(&self, args: &[&str], signer: &str, via: &str) -> Value {
            self.signed("governance", args, signer, "exporting", via)[0].clone()
        }

        fn signed(&self, command: &str, args: &[&str], signer: &str, role: &str, via: &str) -> Value {
            let key = self.node_dir(signer).join(format!("{role}.key"));
            let api = self.api(via);
            let mut all: Vec<&str> = vec!["--json", command];
            all.extend_from_slice(args);
            all.extend_from_slice(&["--key", path(&key), "--node", &api]);
            let out = kpledger(&all);
            assert!(out.status.success(), "{all:?}: {}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice(&out.stdout).unwrap()
        }

        pub fn log(&self, node: &str) -> String {
            std::fs::read_to_string(self.node_dir(node).join("node.log")).unwrap_or_default()
        }

        /// Every node (observers included) at the same height with the same head hash, at least `height`.
        pub fn converge(&self, height: u64, limit: Duration) -> (u64, String) {
            let nodes = self.nodes();
            wait_for("every node to reach the same head", limit, || {
                let heads: Vec<(u64, String)> = nodes
                    .iter()
                    .map(|n| {
                        let s = self.status(n)?;
                        Some((s["height"].as_u64()?, s["head_hash"].as_str()?.to_owned()))
                    })
                    .collect::<Option<_>>()?;
                let first = heads.first()?.clone();
                (first.0 >= height && heads.iter().all(|h| *h == first)).then_some(first)
            })
        }
    }

    impl Drop for Net {
        fn drop(&mut self) {
            // SIGCONT first, in case a test stopped a node and then failed.
            for n in self.nodes() {
                if let Ok(pid) = std::fs::read_to_string(self.node_dir(&n).join("node.pid")) {
                    let _ = Command::new("kill").args(["-CONT", pid.trim()]).stderr(Stdio::null()).status();
                }
            }
            let _ = kpledger(&["testnet", "down", "--dir", path(self.dir.path())]);
            forget(self.dir.path());
            for mut child in self.children.borrow_mut().drain(..).chain(self.relay.borrow_mut().take()) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// A certificate file from the example, under another number and dated today.
    pub fn certificate(dir: &Path, number: &str) -> PathBuf {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../node-config/example-certificate.json");
        let mut c: Value = serde_json::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let day = |days: u64| {
            let d = kp_domain::Date(i32::try_from(days).unwrap());
            d.to_string()
        };
        let today = now / 86_400;
        c["number"] = Value::from(number);
        c["issued_on"] = Value::from(day(today));
        c["expires_on"] = Value::from(day(today + 30));
        let file = dir.join(format!("{number}.json"));
        std::fs::write(&file, serde_json::to_string(&c).unwrap()).unwrap();
        file
    }

    pub fn custody(net: &Net, via: &str, number: &str) -> Value {
        json(&["custody", number, "--node", &net.api(via)])
    }
}
