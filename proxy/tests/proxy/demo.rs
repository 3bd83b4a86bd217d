//! The demo (`scripts/demo.sh`) as a newcomer runs it, on this build's binary and free ports: it starts and its
//! own checks pass (one produce+consume through the proxy byte for byte, a wrong name refused with
//! `unrecognized_name` and counted), a second run while it runs says so and leaves it running, and `stop` stops
//! the broker and the proxy it started. Needs what the test command installs: Kafka's jars and `.venv`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Demo {
    dir: tempfile::TempDir,
    ports: [u16; 4],
}

impl Demo {
    fn run(&self, arg: Option<&str>) -> Output {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository root");
        let [port, admin, broker, controller] = self.ports;
        Command::new("bash")
            .arg(root.join("scripts/demo.sh"))
            .args(arg)
            .env("DEMO_DIR", self.dir.path())
            .env("DEMO_PROXY_BIN", env!("CARGO_BIN_EXE_kaas-proxy"))
            .env("DEMO_PORT", port.to_string())
            .env("DEMO_ADMIN_PORT", admin.to_string())
            .env("DEMO_BROKER_PORT", broker.to_string())
            .env("DEMO_CONTROLLER_PORT", controller.to_string())
            .output()
            .expect("bash runs")
    }

    /// The pid the demo recorded for `name` (`proxy`, `kafka`).
    fn pid(&self, name: &str) -> u32 {
        let path: PathBuf = self.dir.path().join(format!("{name}.pid"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.trim().parse().expect("a pid")
    }
}

impl Drop for Demo {
    /// Also when an assertion failed: no broker or proxy outlives the test.
    fn drop(&mut self) {
        let _ = self.run(Some("stop"));
    }
}

/// Whether `pid` runs (a zombie nobody reaped yet has exited).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn demo_verifies_itself_refuses_a_second_start_and_stops() {
    let ports = [(); 4].map(|()| kaas_testsupport::free_port());
    let demo = Demo { dir: tempfile::tempdir().expect("tempdir"), ports };

    let first = demo.run(None);
    let out = text(&first);
    assert!(first.status.success(), "the demo failed:\n{out}");
    // The demo's own checks passed: it exits non-zero otherwise; here, that they were the ones that ran.
    assert!(out.contains("consumed back in a group, byte for byte"), "{out}");
    assert!(out.contains("refused with the TLS alert unrecognized_name"), "{out}");
    assert!(out.contains(&format!("bootstrap.servers = demo.kaas.localhost:{}", ports[0])), "{out}");
    let pids = ["proxy", "kafka"].map(|p| demo.pid(p));
    assert!(pids.iter().all(|&p| running(p)), "{pids:?} not running after the demo started:\n{out}");

    let second = demo.run(None);
    let out2 = text(&second);
    assert!(second.status.success(), "a second run failed:\n{out2}");
    assert!(out2.contains("already running") && out2.contains("scripts/demo.sh stop"), "{out2}");
    assert_eq!(["proxy", "kafka"].map(|p| demo.pid(p)), pids, "a second run replaced the demo:\n{out2}");
    assert!(pids.iter().all(|&p| running(p)), "a second run stopped the demo:\n{out2}");

    let stop = demo.run(Some("stop"));
    assert!(stop.status.success(), "stop failed:\n{}", text(&stop));
    assert!(pids.iter().all(|&p| !running(p)), "{pids:?} still running after stop:\n{}", text(&stop));
}
