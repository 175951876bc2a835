//! The `raftkv` binary: parse flags, load the data directory, serve. Errors end the process
//! with one clear line on stderr and a non-zero exit (2 for bad flags, 1 otherwise).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use raftkv::config::Flags;
use raftkv::http::{router, AppState};
use raftkv::node::{spawn, Node};
use raftkv::storage::Storage;

fn main() -> ExitCode {
    let plan = match Flags::parse().plan() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("raftkv: error: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(plan) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raftkv: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(plan: raftkv::config::Plan) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Load persisted state before opening the port: /status answers only after this.
    let (storage, loaded) = Storage::open(&plan.data_dir, plan.durability())
        .with_context(|| format!("cannot use data dir {}", plan.data_dir.display()))?;
    if loaded.torn_bytes > 0 {
        tracing::warn!(
            bytes = loaded.torn_bytes,
            "truncated a torn write at the end of the log"
        );
    }
    for d in &loaded.ignored_damage {
        tracing::warn!(
            file = d.file,
            offset = d.offset,
            "BUG SWITCH ignore-checksum: {}",
            d.what
        );
    }
    if let Some(bug) = plan.bug {
        tracing::warn!(?bug, "BUG SWITCH ON: this server is deliberately unsafe");
    }
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(plan.listen)
            .await
            .with_context(|| format!("cannot listen on {}", plan.listen))?;
        let timeout = Duration::from_millis(plan.request_timeout_ms);
        if let Some(via) = plan.join_via.clone() {
            tokio::spawn(raftkv::join::ask_to_join(via, plan.id, plan.listen));
        }
        let talk = plan.talk;
        let node = Node::new(plan, storage, loaded, tokio::runtime::Handle::current());
        let tx = spawn(node);
        let app = router(AppState::new(tx, timeout).talking(talk));
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .context("http server failed")
    })
}
