//! SIGINT and SIGTERM taken by the command instead of ending the process, for the commands
//! that must finish what they are doing first (`watch` ends its cycle, `run` records why the
//! agent stopped).

use std::sync::mpsc;

/// A channel that receives once SIGINT, SIGTERM or SIGHUP (a closed terminal) arrives. The
/// handlers are installed before this returns, so a signal from then on never ends the
/// process mid-step; a second one ends it at once (exit 130), for a cleanup that hangs.
pub(crate) fn shutdown_signals() -> anyhow::Result<mpsc::Receiver<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut interrupt, mut terminate, mut hangup) = {
        let _entered = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        )
    };
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            for n in 0.. {
                runtime.block_on(async {
                    tokio::select! {
                        _ = interrupt.recv() => {},
                        _ = terminate.recv() => {},
                        _ = hangup.recv() => {},
                    }
                });
                if n > 0 {
                    std::process::exit(130);
                }
                let _ = tx.send(());
            }
        })?;
    Ok(rx)
}
