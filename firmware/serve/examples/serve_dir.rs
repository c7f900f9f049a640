//! Serves directories over HTTP with swarmsync's LAN server, for trying it
//! with real clients and for benchmarks:
//!
//! ```text
//! cargo run -p swarmsync-serve --example serve_dir -- 127.0.0.1:8080 /debian=/srv/debian [/rpm=/srv/rpm …]
//! ```
//! `PREFIX=CURRENT,SNAPSHOTS` mounts a store's layout as the node does
//! (`CURRENT` a symlink into the directory `SNAPSHOTS`; by-hash files across
//! snapshots, small files cached). Runs until killed.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(addr) = args.next() else {
        eprintln!("usage: serve_dir ADDR PREFIX=DIR|PREFIX=CURRENT,SNAPSHOTS...");
        return ExitCode::from(2);
    };
    let mut mounts = Vec::new();
    for arg in args {
        let Some((prefix, dir)) = arg.split_once('=') else {
            eprintln!("serve_dir: {arg:?} is not PREFIX=DIR or PREFIX=CURRENT,SNAPSHOTS");
            return ExitCode::from(2);
        };
        let absolute = |dir: &str| match std::path::absolute(dir) {
            Ok(dir) => Ok(dir),
            Err(e) => {
                eprintln!("serve_dir: {dir}: {e}");
                Err(ExitCode::FAILURE)
            }
        };
        let mount = match dir.split_once(',') {
            Some((current, snapshots)) => absolute(current).and_then(|current| {
                absolute(snapshots)
                    .map(|snapshots| serve::Mount::with_snapshots(prefix, current, snapshots))
            }),
            None => absolute(dir).map(|dir| serve::Mount::new(prefix, dir)),
        };
        match mount {
            Ok(mount) => mounts.push(mount),
            Err(code) => return code,
        }
    }
    // The board's shape: one reactor thread, and few blocking threads for
    // file reads (tokio's default allows 512, each with its own stack and,
    // under glibc, possibly its own malloc arena).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(8)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("serve_dir: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("bind {addr}: {e}"))?;
        eprintln!(
            "serve_dir: listening on {}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        serve::run(
            listener,
            mounts,
            serve::Config::default(),
            std::future::pending::<()>(),
        )
        .await
        .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve_dir: {e}");
            ExitCode::FAILURE
        }
    }
}
