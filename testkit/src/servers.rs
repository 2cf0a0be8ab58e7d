//! Servers a test starts and stops itself (a Redis to shut down, a Sentinel topology), killed
//! when their handle drops.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A server process of the test's own; killed on drop.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
}

impl Server {
    /// Starts `program args` and waits until 127.0.0.1:`port` accepts connections; panics
    /// naming the program (and the package to install) if it cannot be started.
    pub fn spawn(program: &str, args: &[&str], port: u16, package: &str) -> Server {
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{program} (Debian package {package}) is needed by this test: {e}")
            });
        let mut server = Server {
            child: Some(child),
            port,
        };
        let mut exited = None;
        let answers = crate::poll_until(Duration::from_secs(10), || {
            if let Some(Ok(Some(status))) = server.child.as_mut().map(Child::try_wait) {
                exited = Some(status);
                return true;
            }
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if let Some(status) = exited {
            panic!("{program} {args:?} exited at start: {status}");
        }
        if !answers {
            server.stop();
            panic!("{program} {args:?} did not answer on 127.0.0.1:{port} within 10 s");
        }
        server
    }

    /// Kills the process and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to end by itself (after a `SHUTDOWN`), at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let exited = crate::poll_until(timeout, || {
            !matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
        });
        if exited {
            self.child = None;
        }
        exited
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis server of the test's own on `port` (nothing saved to disk), with `extra` options.
/// Its working directory is a temporary one: a replica's full sync writes `dump.rdb` there,
/// not into the crate under test.
pub fn redis(port: u16, extra: &[&str]) -> Server {
    let port_s = port.to_string();
    let dir = std::env::temp_dir().join(format!("osp-redis-{port}"));
    std::fs::create_dir_all(&dir).expect("a temporary directory for redis-server");
    let dir = dir
        .to_str()
        .expect("a UTF-8 temporary directory")
        .to_owned();
    let mut args = vec![
        "--dir",
        &dir,
        "--bind",
        "127.0.0.1",
        "--port",
        &port_s,
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    args.extend_from_slice(extra);
    Server::spawn("redis-server", &args, port, "redis-server")
}

/// Runs `redis-cli -p port args` and returns its output (trimmed).
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli (Debian package redis-tools) is needed by this test");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
