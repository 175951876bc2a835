//! What a process per op costs: the command adapter's ops/s and median latency, first with a
//! program that does nothing (`/bin/true`, `/bin/echo`: the harness's spawn cost alone), then
//! against one local etcd through etcdctl (clusters/etcd-ctl.toml) next to the native etcd
//! adapter on the same etcd. `cargo bench --bench command`. Speed is reported, never asserted.
//! The etcd part is skipped (with a message) when etcd or etcdctl is not installed.

use raftcheck::client::{Adapter, Completion, Endpoint, Request};
use raftcheck::history::{Fun, Value};
use raftcheck::spec::ClusterSpec;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Ops per measurement.
const N: usize = 200;
/// Concurrent workers in the second measurement of each pair.
const CONCURRENCY: usize = 4;
const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// A process killed and reaped on drop, so an interrupted bench leaves no etcd behind.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let one = vec![Endpoint {
        index: 0,
        id: 1,
        name: "n1".into(),
        addr: SocketAddr::from(([127, 0, 0, 1], 1)),
    }];
    let noop: ClusterSpec = toml::from_str(
        r#"
binary = "x"
client = "command"
client_port = 1
[command.read]
argv = ["/bin/echo", "5"]
[command.write]
argv = ["/bin/true", "{key}", "{value}"]
"#,
    )
    .expect("bench spec");
    let a = noop.adapter(one).expect("command adapter");
    for f in [Fun::Write, Fun::Read] {
        for conc in [1, CONCURRENCY] {
            let label = format!(
                "command /bin/{}",
                if f == Fun::Read { "echo" } else { "true" }
            );
            rt.block_on(measure(&label, &a, 0, f, conc));
        }
    }

    let (Ok(etcd), Ok(_)) = (
        raftcheck::cluster::find_binary("etcd"),
        raftcheck::cluster::find_binary("etcdctl"),
    ) else {
        println!("etcd part skipped: etcd (etcd-server) or etcdctl (etcd-client) not installed");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ports: Vec<u16> = {
        let ls: Vec<TcpListener> = (0..2)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        ls.iter()
            .map(|l| l.local_addr().expect("addr").port())
            .collect()
    };
    let (cp, pp) = (ports[0], ports[1]);
    let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log");
    let _etcd = Guard(
        Command::new(etcd)
            .args([
                "--name".to_string(),
                "n1".into(),
                "--data-dir".into(),
                dir.path().join("data").display().to_string(),
                "--listen-client-urls".into(),
                format!("http://127.0.0.1:{cp}"),
                "--advertise-client-urls".into(),
                format!("http://127.0.0.1:{cp}"),
                "--listen-peer-urls".into(),
                format!("http://127.0.0.1:{pp}"),
                "--initial-advertise-peer-urls".into(),
                format!("http://127.0.0.1:{pp}"),
                "--initial-cluster".into(),
                format!("n1=http://127.0.0.1:{pp}"),
            ])
            .env("ETCD_UNSUPPORTED_ARCH", "")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start etcd"),
    );
    let eps = vec![Endpoint {
        index: 0,
        id: 1,
        name: "n1".into(),
        addr: SocketAddr::from(([127, 0, 0, 1], cp)),
    }];
    let native: ClusterSpec =
        toml::from_str("binary = \"etcd\"\nclient = \"etcd\"\nclient_port = 2379\n").expect("spec");
    let native = native.adapter(eps.clone()).expect("etcd adapter");
    let ctl =
        ClusterSpec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("clusters/etcd-ctl.toml"))
            .expect("clusters/etcd-ctl.toml")
            .adapter(eps)
            .expect("command adapter");
    rt.block_on(async {
        let probe = Request {
            f: Fun::Write,
            key: Some("bench".into()),
            value: Value::from(0),
        };
        for _ in 0..100 {
            let c = native.invoke(0, &probe, Duration::from_secs(1)).await;
            if matches!(c, Completion::Ok { .. }) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("etcd did not get ready");
    });
    for f in [Fun::Write, Fun::Read, Fun::Cas] {
        for conc in [1, CONCURRENCY] {
            rt.block_on(measure("etcd adapter (HTTP gateway)", &native, 0, f, conc));
            rt.block_on(measure("command adapter (etcdctl)", &ctl, 0, f, conc));
        }
    }
}

/// Run `N` ops of `f` on node `node` with `conc` workers; print ops/s and the median latency.
async fn measure(label: &str, a: &Arc<dyn Adapter>, node: usize, f: Fun, conc: usize) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..conc {
        let a = Arc::clone(a);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut ok = 0usize;
            for i in (w..N).step_by(conc) {
                let key = Some(format!("b{}", i % 10));
                let value = match f {
                    Fun::Cas => serde_json::json!([i, i + 1]),
                    Fun::Read => Value::Null,
                    _ => Value::from(i as u64),
                };
                let t0 = Instant::now();
                let c = a.invoke(node, &Request { f, key, value }, OP_TIMEOUT).await;
                lat.push(t0.elapsed());
                // A cas that mismatches is a definite answer too: both count as served.
                if matches!(c, Completion::Ok { .. })
                    || matches!(&c, Completion::Fail { error, .. } if error == "mismatch")
                {
                    ok += 1;
                }
            }
            (lat, ok)
        }));
    }
    let mut lat = Vec::new();
    let mut ok = 0;
    for t in tasks {
        let (l, k) = t.await.expect("bench task");
        lat.extend(l);
        ok += k;
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let median = lat.get(lat.len() / 2).copied().unwrap_or_default();
    let p99 = lat.get(lat.len() * 99 / 100).copied().unwrap_or_default();
    println!(
        "{label:<30} {:<5} concurrency {conc}: {N} ops in {secs:.2} s = {:>6.0} ops/s, median {:>6.2} ms, p99 {:>6.2} ms, {ok} answered",
        f.name(),
        N as f64 / secs,
        median.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
    );
}
