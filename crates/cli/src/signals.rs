//! SIGINT and SIGTERM taken by the command instead of ending the process, for the commands
//! that must finish what they are doing first (`watch` ends its cycle, `run` records why the
//! agent stopped).

use std::sync::mpsc;

/// A channel that receives once SIGINT or SIGTERM arrives. The handlers are installed before
/// this returns, so a signal from then on never ends the process mid-step.
pub(crate) fn shutdown_signals() -> anyhow::Result<mpsc::Receiver<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut interrupt, mut terminate) = {
        let _entered = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            runtime.block_on(async {
                tokio::select! {
                    _ = interrupt.recv() => {},
                    _ = terminate.recv() => {},
                }
            });
            let _ = tx.send(());
        })?;
    Ok(rx)
}
