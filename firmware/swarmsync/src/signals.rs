//! Stopping cleanly on Ctrl-C (a terminal) and SIGTERM (systemd, docker,
//! the image's init): both mean "finish what is in flight and exit 0".

/// Resolves on the first SIGINT or SIGTERM.
pub async fn terminated() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Resolves once `stop` is true (or its sender is gone). Holds no borrow
/// of the value, so it can sit in a `select!` across other awaits.
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
